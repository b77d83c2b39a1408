import { toError } from '../../errors.js';
import type { ConsumerEvents, HandlerSettledEvent } from '../events.js';
import type { InboundMessage } from '../options.js';

/** Reports a call's outcome and duration; metrics keep their histograms through these. */
export type AttemptObserver = (
  topic: string,
  outcome: HandlerSettledEvent['outcome'],
  durationMs: number,
) => void;

export interface CallObserverHooks {
  emit(event: 'handler.settled', payload: Parameters<ConsumerEvents['handler.settled']>[0]): void;
  /** Whether anyone listens for `handler.settled` (the payload is built only then). */
  settledListened(): boolean;
  error(error: Error): void;
}

/**
 * Who hears of each handler call as it ends: the attempt observers
 * (metrics) and the `handler.settled` listeners. Both the per-message and
 * the batch runner report here; with neither, `wanted` is false and the
 * runners build nothing.
 */
export class CallObservers {
  readonly list: AttemptObserver[] = [];
  readonly #hooks: CallObserverHooks;

  constructor(hooks: CallObserverHooks) {
    this.#hooks = hooks;
  }

  get wanted(): boolean {
    return this.list.length > 0 || this.#hooks.settledListened();
  }

  /** Adds an observer of every call's outcome and duration; returns its removal. */
  add(observer: AttemptObserver): () => void {
    this.list.push(observer);
    return () => {
      const at = this.list.indexOf(observer);
      if (at !== -1) this.list.splice(at, 1);
    };
  }

  /**
   * A call ended. `first` is its (first) message, `messages` how many it
   * carried. An observer that throws is reported and does not turn a
   * success into a failure.
   */
  ended(
    first: InboundMessage<unknown>,
    messages: number,
    attempt: number,
    error: Error | undefined,
    durationMs: number,
  ): void {
    const outcome: HandlerSettledEvent['outcome'] =
      error === undefined ? 'success' : error.name === 'HandlerTimeoutError' ? 'timeout' : 'error';
    try {
      for (const observer of this.list) observer(first.topic, outcome, durationMs);
      if (!this.#hooks.settledListened()) return;
      this.#hooks.emit('handler.settled', {
        topic: first.topic,
        partition: first.partition,
        offset: first.offset,
        attempt,
        durationMs,
        outcome,
        messages,
      });
    } catch (observerError) {
      this.#hooks.error(toError(observerError));
    }
  }
}
