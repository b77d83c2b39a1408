import type { InboundMessage, RecordSender } from './message.js';

// The option groups of the consumer (retry, dead letters, circuit breaker,
// latency, adaptive concurrency, batches), each key with its default.
// Resolved in option-groups.ts; the top-level options are in options.ts.

export interface RetryOptions {
  /** Attempts in all, the first included. @default 3 */
  readonly maxAttempts?: number;
  /** Delay after the first failure. @default 200 */
  readonly initialDelayMs?: number;
  /** Upper bound of the delay. @default 30000 */
  readonly maxDelayMs?: number;
  /** Growth of the delay per attempt. @default 2 */
  readonly multiplier?: number;
  /** Fraction of each delay that is randomized (0..1). @default 0.5 */
  readonly jitter?: number;
  /**
   * Decides whether an error is worth another attempt. It is asked only about
   * errors that are not already non-retriable: a {@link NonRetriableError} or
   * an error with `retriable === false` is never retried, whatever it says.
   * @default every other error is retriable
   */
  readonly isRetriable?: (error: Error) => boolean;
}

export interface DeadLetterOptions {
  /** Where dead letters are written: acknowledged by all in-sync replicas before the offset counts as done. */
  readonly producer: RecordSender;
  /**
   * The dead-letter topic, or a function of the message choosing it.
   * @default `${message.topic}.dlq`
   */
  readonly topic?: string | ((message: InboundMessage<unknown>) => string);
  /** Add the error's stack (truncated to `maxStackLength`) as a header. @default false */
  readonly includeStack?: boolean;
  /** @default 2000 */
  readonly maxStackLength?: number;
  /** First delay between attempts to write a dead letter when the write fails. @default 500 */
  readonly retryInitialDelayMs?: number;
  /** @default 30000 */
  readonly retryMaxDelayMs?: number;
}

export interface CircuitBreakerOptions {
  /** Failure percentage over the rolling window that opens the circuit. @default 50 */
  readonly errorThresholdPercentage?: number;
  /** Calls in the window before the circuit may open at all. @default 10 */
  readonly volumeThreshold?: number;
  /** Time open before a probe is let through (half-open). @default 10000 */
  readonly resetTimeoutMs?: number;
  /** Length of the rolling statistics window. @default 10000 */
  readonly rollingCountTimeoutMs?: number;
  /** Buckets in the rolling window. @default 10 */
  readonly rollingCountBuckets?: number;
  /**
   * Whether the downstream works, asked of your code instead of a message:
   * it is the half-open probe, and it decides when every message that could
   * run is failing (in `partition` ordering every head can be a poison
   * message, and then only this tells poison from an outage). Resolve true
   * for healthy; false, a throw, or no answer within `handlerTimeoutMs`
   * count as down. Without one, the consumer guesses in that case (see
   * docs/failures.md). @default none
   */
  readonly healthCheck?: (signal: AbortSignal) => Promise<boolean>;
}

export interface LatencyOptions {
  /** Which percentile of handler time drives the trigger. @default 95 */
  readonly percentile?: number;
  /**
   * Pause every partition while the percentile is above this. After a pause
   * that could not lower latency (`latency.normal` with `noEffect`), the
   * mark in force is 1.5 × the latency its probes saw, until calls are
   * below `resumeBelowMs` again.
   */
  readonly pauseAboveMs: number;
  /**
   * While paused, calls that end below this are fast probes; the pause ends
   * after `probes` of them in a row (must be lower than `pauseAboveMs`).
   * `probes` slow ones in a row end it too when they show it cannot lower
   * latency (see docs/consumer.md, "Latency control").
   * @default pauseAboveMs / 2
   */
  readonly resumeBelowMs?: number;
  /**
   * Calls let through at once while paused (the concurrency limit drops to
   * it at once, for admitted work too), and how many fast ones in a row end
   * the pause. @default 3
   */
  readonly probes?: number;
  /** Length of the rolling window. @default 10000 */
  readonly windowMs?: number;
}

export interface AdaptiveConcurrencyOptions {
  /** @default 1 */
  readonly minConcurrency?: number;
  /** @default the `concurrency` option */
  readonly maxConcurrency?: number;
  /**
   * Mean handler latency under which the downstream always counts as
   * healthy. Above it, the limit compares recent latency with the baseline
   * it learned (see docs/consumer.md, "Adaptive concurrency").
   */
  readonly targetLatencyMs: number;
  /** The deepest single cut: one step never takes the limit below `limit × decreaseFactor`. @default 0.5 */
  readonly decreaseFactor?: number;
  /** @default 1 */
  readonly increaseStep?: number;
  /**
   * How often the limit is reconsidered. A step also waits for calls that
   * started under the current limit, so a slow downstream is not decided
   * on faster than it answers. @default 250
   */
  readonly intervalMs?: number;
}

export interface BatchOptions {
  /** Messages in one batch handler call, at most (and at most `maxInFlight`). @default 100 */
  readonly maxMessages?: number;
  /** Bytes (key + value + headers) in one call, at most; a larger message goes alone. @default 1048576 (1 MiB) */
  readonly maxBytes?: number;
  /**
   * How long runnable messages wait for more to fill a batch (linger),
   * counted from when they arrived or the previous batch of their lane
   * left; 0 runs what is there at once. @default 10
   */
  readonly maxWaitMs?: number;
}
