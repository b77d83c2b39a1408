import type { PendingSend } from './buffer.js';

export type DrainOutcome = 'settled' | 'timeout' | 'aborted';

/**
 * Waits until every one of `sends` has settled, `timeoutMs` has run out
 * (`Infinity`: never) or `signal` aborts, whichever comes first, and says
 * which. Leaves no timer or listener behind.
 */
export function drain(
  sends: readonly PendingSend[],
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<DrainOutcome> {
  if (signal?.aborted === true) return Promise.resolve('aborted');
  const all = Promise.all(sends.map((p) => p.done));
  if (timeoutMs === Number.POSITIVE_INFINITY && signal === undefined) {
    return all.then(() => 'settled');
  }
  return new Promise((resolve) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const finish = (outcome: DrainOutcome): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(outcome);
    };
    const onAbort = (): void => finish('aborted');
    if (timeoutMs !== Number.POSITIVE_INFINITY) {
      timer = setTimeout(() => finish('timeout'), timeoutMs);
      timer.unref();
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    void all.then(() => finish('settled'));
  });
}
