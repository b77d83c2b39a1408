/**
 * What happened during the demo, as data: ticks (the consumer's and the
 * producer's state every half second), lag rounds (the LagMonitor's
 * snapshots), events, and intervals (steps, pauses per partition and why,
 * circuit states, lag statuses). The terminal view, the summary, the JSON
 * timeline and the HTML report are all drawn from it.
 */
import type { CircuitState, LagStatus, PauseReason } from '../../src/index.js';

export interface PartitionTick {
  readonly partition: number;
  readonly inFlight: number;
  readonly paused: boolean;
  readonly reasons: readonly PauseReason[];
}

export interface Tick {
  /** Seconds since the demo started. */
  readonly t: number;
  readonly step: string;
  readonly produced: number;
  /** Handled (first time) plus dead-lettered. */
  readonly completed: number;
  readonly handled: number;
  readonly deadLettered: number;
  /** msg/s over the last two seconds. */
  readonly produceRate: number;
  readonly consumeRate: number;
  readonly produceLimit: number;
  readonly inFlight: number;
  readonly maxInFlight: number;
  readonly activeHandlers: number;
  readonly concurrency: number;
  readonly circuit: CircuitState | 'none';
  readonly ordering: string;
  readonly partitions: readonly PartitionTick[];
}

export interface LagRound {
  readonly t: number;
  readonly total: number;
  readonly status: LagStatus;
  readonly partitions: readonly { readonly partition: number; readonly lag: number }[];
  readonly consumersNeeded: number | null;
  readonly timeToDrainSeconds: number | null;
  readonly produceRate: number | null;
  readonly consumeRate: number | null;
  readonly members: number | null;
}

export type EventLevel = 'step' | 'info' | 'good' | 'warn' | 'bad';

export interface TimelineEvent {
  readonly t: number;
  readonly step: string;
  readonly kind: string;
  readonly level: EventLevel;
  readonly text: string;
}

export type IntervalKind = 'step' | 'paused' | 'circuit' | 'lag-status' | 'outage';

export interface Interval {
  readonly kind: IntervalKind;
  /** Step name, pause reasons (comma separated), circuit or lag state. */
  label: string;
  readonly partition?: number;
  readonly start: number;
  end: number;
}

export class Timeline {
  readonly startedAt = performance.now();
  readonly ticks: Tick[] = [];
  readonly lag: LagRound[] = [];
  readonly events: TimelineEvent[] = [];
  readonly intervals: Interval[] = [];
  readonly #open = new Map<string, Interval>();
  step = 'setup';

  now(): number {
    return Math.round(performance.now() - this.startedAt) / 1000;
  }

  event(kind: string, level: EventLevel, text: string): TimelineEvent {
    const event = { t: this.now(), step: this.step, kind, level, text };
    this.events.push(event);
    return event;
  }

  /** Opens an interval under `key`, closing the one open there (a state change). */
  open(key: string, kind: IntervalKind, label: string, partition?: number): Interval {
    const t = this.now();
    this.close(key, t);
    const interval: Interval = {
      kind,
      label,
      start: t,
      end: t,
      ...(partition === undefined ? {} : { partition }),
    };
    this.#open.set(key, interval);
    this.intervals.push(interval);
    return interval;
  }

  isOpen(key: string): Interval | undefined {
    return this.#open.get(key);
  }

  openKeys(prefix: string): string[] {
    return [...this.#open.keys()].filter((key) => key.startsWith(prefix));
  }

  close(key: string, t = this.now()): void {
    const interval = this.#open.get(key);
    if (interval === undefined) return;
    interval.end = t;
    this.#open.delete(key);
  }

  closeAll(prefix = ''): void {
    const t = this.now();
    for (const key of [...this.#open.keys()]) if (key.startsWith(prefix)) this.close(key, t);
  }

  /** Open intervals end "now" while the demo runs. */
  touch(): void {
    const t = this.now();
    for (const interval of this.#open.values()) interval.end = t;
  }

  /** Seconds spent in each label of `kind` (pauses: wall time with any partition paused for that reason). */
  secondsIn(kind: IntervalKind): Map<string, number> {
    const spans = new Map<string, [number, number][]>();
    for (const i of this.intervals) {
      if (i.kind !== kind) continue;
      for (const label of kind === 'paused' ? i.label.split(',') : [i.label]) {
        const list = spans.get(label) ?? [];
        list.push([i.start, i.end]);
        spans.set(label, list);
      }
    }
    const seconds = new Map<string, number>();
    for (const [label, list] of spans) seconds.set(label, unionLength(list));
    return seconds;
  }
}

/** Length of the union of [start, end] spans (overlaps counted once). */
export function unionLength(spans: readonly (readonly [number, number])[]): number {
  const sorted = [...spans].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let start = Number.NaN;
  let end = Number.NaN;
  for (const [s, e] of sorted) {
    if (Number.isNaN(start) || s > end) {
      if (!Number.isNaN(start)) total += end - start;
      start = s;
      end = e;
    } else end = Math.max(end, e);
  }
  if (!Number.isNaN(start)) total += end - start;
  return Math.round(total * 10) / 10;
}
