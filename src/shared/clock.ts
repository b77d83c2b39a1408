/** Time source, injected so that rolling windows and flow decisions can be tested without waiting. */
export interface Clock {
  /** Milliseconds, monotonic enough for durations. */
  now(): number;
}

export const systemClock: Clock = {
  now: () => performance.now(),
};
