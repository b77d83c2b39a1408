import { ConfigError, toError } from '../../errors.js';
import { LAG_STATUSES, isLagStatus, lagStatusLevel, type LagStatus } from '../../lag/lag-status.js';
import {
  duration,
  integer,
  knownKeys,
  oneOf,
  optionalFunction,
  plainObject,
} from '../../shared/validate.js';

/**
 * The upstream-pause rule: a consumer pauses (reason `downstream-lag`) while
 * the group of the next pipeline stage is too far behind, so backpressure
 * crosses a Kafka topic. The signal has the shape of the rate-limited
 * producer's `lagSignal` (functions polled every `intervalMs`, the next poll
 * only after the previous one settled), so a `LagMonitor` plugs into both
 * the same way: `{ status: monitor.status, lag: monitor.lag }`.
 */
export interface DownstreamLagOptions {
  /**
   * The downstream group's lag status. A `LagMonitor`'s `status` (a bound
   * function) fits as it is. A throw, a rejection or anything but `'ok'`,
   * `'warning'` or `'critical'` is reported as `consumer.error` (during
   * `downstream-lag`) and the last state stays in force. Give `status`,
   * `lag` or both.
   * @default none: the status is not polled
   */
  readonly status?: () => LagStatus | Promise<LagStatus>;
  /**
   * The downstream group's lag in messages (its total). A `LagMonitor`'s
   * `lag` (bound) fits. `undefined` means not known yet: the state stays.
   * Required together with `pauseAboveLag`.
   * @default none: the lag is not polled
   */
  readonly lag?: () => number | undefined | Promise<number | undefined>;
  /** With `status`: pause once the status reaches this level. @default 'critical' */
  readonly pauseAtStatus?: 'warning' | 'critical';
  /** With `status`: after a status pause, resume once the status is at or below this level. @default 'ok' */
  readonly resumeAtStatus?: 'ok' | 'warning';
  /**
   * With `lag`: pause while the lag is above this many messages. Required
   * together with `lag`.
   * @default none (only with `lag`)
   */
  readonly pauseAboveLag?: number;
  /**
   * With `lag`: after a lag pause, resume once the lag is below this (at
   * least 1, at most `pauseAboveLag`).
   * @default max(1, floor(pauseAboveLag / 2))
   */
  readonly resumeBelowLag?: number;
  /**
   * Milliseconds between two polls of `status` and `lag`; the next poll is
   * scheduled only after the previous one settled.
   * @default 1000
   */
  readonly intervalMs?: number;
}

export interface ResolvedDownstreamLag {
  readonly status:
    | {
        readonly read: () => LagStatus | Promise<LagStatus>;
        readonly pauseAt: 'warning' | 'critical';
        readonly resumeAt: 'ok' | 'warning';
      }
    | undefined;
  readonly lag:
    | {
        readonly read: () => number | undefined | Promise<number | undefined>;
        readonly pauseAbove: number;
        readonly resumeBelow: number;
      }
    | undefined;
  readonly intervalMs: number;
}

const KEYS = [
  'status',
  'lag',
  'pauseAtStatus',
  'resumeAtStatus',
  'pauseAboveLag',
  'resumeBelowLag',
  'intervalMs',
] as const;

/** Validates the `downstreamLag` option; undefined when it is not set. */
export function resolveDownstreamLag(value: unknown): ResolvedDownstreamLag | undefined {
  const raw = plainObject('downstreamLag', value);
  if (raw === undefined) return undefined;
  knownKeys('downstreamLag', raw, KEYS);
  const readStatus = optionalFunction<() => LagStatus | Promise<LagStatus>>(
    'downstreamLag.status',
    raw['status'],
  );
  const readLag = optionalFunction<() => number | undefined | Promise<number | undefined>>(
    'downstreamLag.lag',
    raw['lag'],
  );
  if (readStatus === undefined && readLag === undefined) {
    throw new ConfigError(
      'downstreamLag',
      'an object with `status` (e.g. a LagMonitor’s `status`) and/or `lag` with `pauseAboveLag`',
      value,
    );
  }

  let status: ResolvedDownstreamLag['status'];
  if (readStatus === undefined) {
    for (const key of ['pauseAtStatus', 'resumeAtStatus'] as const) {
      if (raw[key] !== undefined) {
        throw new ConfigError(
          `downstreamLag.${key}`,
          'no value without `downstreamLag.status`',
          raw[key],
        );
      }
    }
  } else {
    const pauseAt = oneOf(
      'downstreamLag.pauseAtStatus',
      raw['pauseAtStatus'],
      PAUSE_AT,
      'critical',
    );
    const resumeAt = oneOf('downstreamLag.resumeAtStatus', raw['resumeAtStatus'], RESUME_AT, 'ok');
    if (lagStatusLevel(resumeAt) >= lagStatusLevel(pauseAt)) {
      throw new ConfigError(
        'downstreamLag.resumeAtStatus',
        `a level below \`downstreamLag.pauseAtStatus\` ("${pauseAt}")`,
        resumeAt,
      );
    }
    status = Object.freeze({ read: readStatus, pauseAt, resumeAt });
  }

  let lag: ResolvedDownstreamLag['lag'];
  if (readLag === undefined) {
    for (const key of ['pauseAboveLag', 'resumeBelowLag'] as const) {
      if (raw[key] !== undefined) {
        throw new ConfigError(
          `downstreamLag.${key}`,
          'no value without `downstreamLag.lag`',
          raw[key],
        );
      }
    }
  } else {
    if (raw['pauseAboveLag'] === undefined) {
      throw new ConfigError(
        'downstreamLag.pauseAboveLag',
        'a number of messages (integer >= 1) together with `downstreamLag.lag`',
        undefined,
      );
    }
    const pauseAbove = integer('downstreamLag.pauseAboveLag', raw['pauseAboveLag'], 0, { min: 1 });
    const resumeBelow = integer(
      'downstreamLag.resumeBelowLag',
      raw['resumeBelowLag'],
      Math.max(1, Math.floor(pauseAbove / 2)),
      { min: 1 },
    );
    if (resumeBelow > pauseAbove) {
      throw new ConfigError(
        'downstreamLag.resumeBelowLag',
        `at most \`downstreamLag.pauseAboveLag\` (${pauseAbove})`,
        resumeBelow,
      );
    }
    lag = Object.freeze({ read: readLag, pauseAbove, resumeBelow });
  }

  return Object.freeze({
    status,
    lag,
    intervalMs: duration('downstreamLag.intervalMs', raw['intervalMs'], 1000, { min: 10 }),
  });
}

const PAUSE_AT: readonly ('warning' | 'critical')[] = ['warning', 'critical'];
const RESUME_AT: readonly ('ok' | 'warning')[] = ['ok', 'warning'];

/** One poll's result; a measure not configured or not readable is undefined. */
export interface DownstreamLagReading {
  readonly status: LagStatus | undefined;
  readonly lag: number | undefined;
}

export interface DownstreamLagDecision {
  readonly paused: boolean;
  /** True when `paused` differs from before this reading. */
  readonly changed: boolean;
  /** Which measure crossed which mark, e.g. `lag 5123 > pauseAboveLag 5000`. */
  readonly reason: string;
  /** The last known values (a reading's undefined keeps the one before). */
  readonly status: LagStatus | undefined;
  readonly lag: number | undefined;
}

/**
 * The hysteresis of the rule, with no I/O. Status and lag each hold their
 * own latch (set at the high mark, cleared at the low one); the consumer is
 * paused while either holds. An unknown measure leaves its latch as it is.
 */
export class DownstreamLagTrigger {
  readonly #settings: ResolvedDownstreamLag;
  #byStatus = false;
  #byLag = false;
  #status: LagStatus | undefined;
  #lag: number | undefined;

  constructor(settings: ResolvedDownstreamLag) {
    this.#settings = settings;
  }

  get paused(): boolean {
    return this.#byStatus || this.#byLag;
  }

  update(reading: DownstreamLagReading): DownstreamLagDecision {
    const before = this.paused;
    const s = this.#settings;
    if (s.status && reading.status !== undefined) {
      this.#status = reading.status;
      const level = lagStatusLevel(reading.status);
      if (level >= lagStatusLevel(s.status.pauseAt)) this.#byStatus = true;
      else if (level <= lagStatusLevel(s.status.resumeAt)) this.#byStatus = false;
    }
    if (s.lag && reading.lag !== undefined) {
      this.#lag = reading.lag;
      if (reading.lag > s.lag.pauseAbove) this.#byLag = true;
      else if (reading.lag < s.lag.resumeBelow) this.#byLag = false;
    }
    const paused = this.paused;
    return {
      paused,
      changed: paused !== before,
      reason: this.#explain(paused),
      status: this.#status,
      lag: this.#lag,
    };
  }

  #explain(paused: boolean): string {
    const s = this.#settings;
    const parts: string[] = [];
    if (paused) {
      if (this.#byStatus && s.status) {
        parts.push(`status ${String(this.#status)} >= pauseAtStatus ${s.status.pauseAt}`);
      }
      if (this.#byLag && s.lag)
        parts.push(`lag ${String(this.#lag)} > pauseAboveLag ${s.lag.pauseAbove}`);
      return parts.join(' and ');
    }
    if (s.status) {
      parts.push(
        this.#status === undefined
          ? 'status unknown'
          : `status ${this.#status} <= resumeAtStatus ${s.status.resumeAt}`,
      );
    }
    if (s.lag) {
      parts.push(
        this.#lag === undefined
          ? 'lag unknown'
          : `lag ${this.#lag} < resumeBelowLag ${s.lag.resumeBelow}`,
      );
    }
    return parts.join(' and ');
  }
}

export interface DownstreamLagListener {
  /** The rule's state changed. */
  changed(decision: DownstreamLagDecision): void;
  /** A signal call failed or returned something unusable; the last state stays. */
  error(error: Error): void;
}

/**
 * Polls the signal and feeds the trigger: the first poll at `start()`, then
 * one `intervalMs` after the previous settled. The timer is unref'd and
 * cleared by `stop()`; a poll in progress at `stop()` changes nothing.
 */
export class DownstreamLagWatch {
  readonly #settings: ResolvedDownstreamLag;
  readonly #listener: DownstreamLagListener;
  readonly #trigger: DownstreamLagTrigger;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(settings: ResolvedDownstreamLag, listener: DownstreamLagListener) {
    this.#settings = settings;
    this.#listener = listener;
    this.#trigger = new DownstreamLagTrigger(settings);
  }

  get paused(): boolean {
    return this.#trigger.paused;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    void this.#poll();
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  async #poll(): Promise<void> {
    this.#timer = undefined;
    try {
      const [status, lag] = await Promise.all([this.#readStatus(), this.#readLag()]);
      if (!this.#running) return;
      const decision = this.#trigger.update({ status, lag });
      if (decision.changed) this.#listener.changed(decision);
    } catch (error) {
      // A listener that threw; the polling must go on.
      this.#report(error);
    } finally {
      if (this.#running) {
        this.#timer = setTimeout(() => void this.#poll(), this.#settings.intervalMs);
        this.#timer.unref();
      }
    }
  }

  async #readStatus(): Promise<LagStatus | undefined> {
    const signal = this.#settings.status;
    if (signal === undefined) return undefined;
    try {
      const value: unknown = await signal.read();
      if (isLagStatus(value)) return value;
      throw new ConfigError(
        'downstreamLag.status()',
        `a result of ${LAG_STATUSES.map((s) => `"${s}"`).join(', ')}`,
        value,
      );
    } catch (error) {
      this.#report(error);
      return undefined;
    }
  }

  async #readLag(): Promise<number | undefined> {
    const signal = this.#settings.lag;
    if (signal === undefined) return undefined;
    try {
      const value: unknown = await signal.read();
      if (
        value === undefined ||
        (typeof value === 'number' && Number.isFinite(value) && value >= 0)
      )
        return value;
      throw new ConfigError(
        'downstreamLag.lag()',
        'a result that is a finite number >= 0, or undefined while unknown',
        value,
      );
    } catch (error) {
      this.#report(error);
      return undefined;
    }
  }

  #report(error: unknown): void {
    if (!this.#running) return;
    try {
      this.#listener.error(toError(error));
    } catch {
      // The error listener itself threw: nothing left to tell.
    }
  }
}
