/**
 * Two downstreams in pure code, for the adaptive limit's tests and the
 * bench: how long a call takes, given how many calls the downstream holds
 * when it starts (itself included).
 */
export type DownstreamModel = (inFlight: number) => number;

/**
 * A downstream with `slots` workers: up to `slots` calls take `baseMs`;
 * past that they share the workers, so latency grows with the concurrency
 * sent and throughput stays at `slots / baseMs`.
 */
export const capacityModel =
  (baseMs: number, slots: number): DownstreamModel =>
  (inFlight) =>
    baseMs * Math.max(1, inFlight / slots);

/** A downstream that is slow, not overloaded: every call takes `ms` whatever the concurrency. */
export const fixedModel =
  (ms: number): DownstreamModel =>
  () =>
    ms;
