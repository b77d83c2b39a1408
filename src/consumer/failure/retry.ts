/**
 * Exponential backoff with "full jitter" (a random delay between half and all
 * of the exponential step), so that many messages failing at once against the
 * same downstream do not retry in lockstep.
 */
export interface BackoffSettings {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  /** 0 = no jitter, 1 = delay anywhere in [0, step]. */
  readonly jitter: number;
}

/** Delay before attempt `attempt + 1`, given that `attempt` (1-based) just failed. */
export function backoffDelay(
  attempt: number,
  settings: BackoffSettings,
  random: () => number = Math.random,
): number {
  const step = Math.min(
    settings.maxDelayMs,
    settings.initialDelayMs * settings.multiplier ** (attempt - 1),
  );
  const jittered = step * (1 - settings.jitter * random());
  return Math.max(0, Math.round(jittered));
}
