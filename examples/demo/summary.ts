/**
 * The demo's last word: every message accounted for (handled, dead-lettered,
 * duplicated or lost), peaks, time in each state, and the checks that make
 * `--ci` fail when the library did not do what the demo says it does.
 */
import type { DemoConfig } from './config.js';
import type { MessageKind } from './load.js';
import type { Timeline } from './timeline.js';
import type { View } from './view.js';

export interface OutageFacts {
  readonly circuitOpened: boolean;
  readonly openedAfterSeconds: number | null;
  readonly closedAfterSeconds: number | null;
  readonly drainedAfterSeconds: number | null;
  readonly deadLettered: number;
  readonly retries: number;
  readonly downstreamFailures: number;
}

export interface StepFacts {
  circuitOpenedAt?: number | undefined;
  circuitClosedAt?: number;
  burstLag?: number;
  /** How long closing the partition-ordering consumer took (its in-flight work finishing). */
  closeSeconds?: number;
  drain?: {
    readonly from: number;
    readonly seconds: number | null;
    readonly mark: number;
    readonly peakConsumeRate: number;
  };
  outage?: OutageFacts;
}

export interface Check {
  readonly name: string;
  readonly ok: boolean;
  readonly detail: string;
}

export interface DemoSummary {
  readonly interrupted: boolean;
  readonly steps: readonly string[];
  readonly durationSeconds: number;
  readonly produced: number;
  readonly produceFailures: number;
  readonly poisonProduced: number;
  /** Distinct messages handled successfully. */
  readonly handled: number;
  /** Distinct messages dead-lettered (from the events). */
  readonly deadLettered: number;
  /** Records found on the dead-letter topic. */
  readonly dlqTopicRecords: number;
  /** Extra successful handlings and extra dead letters of one message. */
  readonly duplicates: number;
  readonly lost: number;
  readonly lostIds: readonly number[];
  readonly peakLag: number;
  readonly peakLagAtSeconds: number | null;
  readonly finalLag: number | null;
  readonly peakInFlight: Readonly<Partial<Record<'partition' | 'key', number>>>;
  readonly peakHandlers: number;
  readonly retries: number;
  readonly pauses: Readonly<Record<string, number>>;
  readonly drain: StepFacts['drain'] | null;
  readonly outage: OutageFacts | null;
  /** Seconds in each state. `paused`: wall time with at least one partition paused for that reason. */
  readonly secondsIn: {
    readonly lagStatus: Readonly<Record<string, number>>;
    readonly circuit: Readonly<Record<string, number>>;
    readonly paused: Readonly<Record<string, number>>;
    readonly step: Readonly<Record<string, number>>;
  };
  readonly checks: readonly Check[];
  readonly ok: boolean;
}

export interface SummaryInput {
  readonly config: DemoConfig;
  readonly timeline: Timeline;
  readonly interrupted: boolean;
  readonly acked: ReadonlyMap<number, MessageKind>;
  readonly produceFailures: number;
  readonly handled: ReadonlyMap<number, number>;
  readonly deadLettered: ReadonlyMap<number, number>;
  readonly dlqTopicIds: readonly (number | undefined)[];
  readonly finalLag: number | null;
  readonly peakInFlight: Partial<Record<'partition' | 'key', number>>;
  readonly peakHandlers: number;
  readonly retries: number;
  readonly pauseCounts: ReadonlyMap<string, number>;
  readonly facts: StepFacts;
}

export function computeSummary(input: SummaryInput): DemoSummary {
  const { config, timeline: t } = input;
  const poisonIds = [...input.acked].filter(([, kind]) => kind !== 'order').map(([id]) => id);
  const lostIds = [...input.acked.keys()].filter(
    (id) => !input.handled.has(id) && !input.deadLettered.has(id),
  );
  let duplicates = 0;
  for (const n of input.handled.values()) duplicates += n - 1;
  for (const n of input.deadLettered.values()) duplicates += n - 1;
  // A message both handled and dead-lettered was processed twice as well.
  for (const id of input.deadLettered.keys()) if (input.handled.has(id)) duplicates += 1;

  let peakLag = 0;
  let peakLagAtSeconds: number | null = null;
  for (const r of t.lag) {
    if (r.total > peakLag) {
      peakLag = r.total;
      peakLagAtSeconds = r.t;
    }
  }

  const dlqIds = new Set(input.dlqTopicIds);
  const checks: Check[] = [];
  checks.push({
    name: 'no loss',
    ok: lostIds.length === 0 && input.produceFailures === 0,
    detail:
      `${input.acked.size} acknowledged by the broker, ${lostIds.length} neither handled nor dead-lettered` +
      (input.produceFailures > 0 ? `, ${input.produceFailures} produce failures` : ''),
  });
  checks.push({
    name: 'committed to the end',
    ok: input.finalLag === 0,
    detail: `the group's committed lag after the last commit: ${input.finalLag ?? 'unknown'}`,
  });
  checks.push({
    name: 'dead letters = poison messages',
    ok:
      input.dlqTopicIds.length === poisonIds.length &&
      poisonIds.every((id) => dlqIds.has(id)) &&
      input.deadLettered.size === poisonIds.length,
    detail: `${poisonIds.length} poison produced, ${input.deadLettered.size} dead-lettered, ${input.dlqTopicIds.length} on the DLQ topic`,
  });
  checks.push({
    name: 'no duplicates',
    ok: duplicates === 0,
    detail: `${duplicates} message(s) processed more than once (at-least-once allows it; a clean run has none)`,
  });
  const outage = input.facts.outage ?? null;
  if (config.steps.includes('outage') && !input.interrupted) {
    checks.push({
      name: 'circuit opened during the outage',
      ok: outage?.circuitOpened ?? false,
      detail:
        outage?.openedAfterSeconds == null
          ? 'the circuit never opened'
          : `opened ${outage.openedAfterSeconds} s after the downstream went down`,
    });
    checks.push({
      name: 'nothing dead-lettered by the outage',
      ok: outage !== null && outage.deadLettered === 0,
      detail: `${outage?.deadLettered ?? '?'} dead letters between the outage and the recovery`,
    });
  }

  const record = (m: Map<string, number>): Record<string, number> => Object.fromEntries(m);
  return {
    interrupted: input.interrupted,
    steps: config.steps,
    durationSeconds: t.now(),
    produced: input.acked.size,
    produceFailures: input.produceFailures,
    poisonProduced: poisonIds.length,
    handled: input.handled.size,
    deadLettered: input.deadLettered.size,
    dlqTopicRecords: input.dlqTopicIds.length,
    duplicates,
    lost: lostIds.length,
    lostIds: lostIds.slice(0, 20),
    peakLag,
    peakLagAtSeconds,
    finalLag: input.finalLag,
    peakInFlight: { ...input.peakInFlight },
    peakHandlers: input.peakHandlers,
    retries: input.retries,
    pauses: Object.fromEntries(input.pauseCounts),
    drain: input.facts.drain ?? null,
    outage,
    secondsIn: {
      lagStatus: record(t.secondsIn('lag-status')),
      circuit: record(t.secondsIn('circuit')),
      paused: record(t.secondsIn('paused')),
      step: record(t.secondsIn('step')),
    },
    checks,
    ok: checks.every((c) => c.ok),
  };
}

const seconds = (r: Readonly<Record<string, number>>, order: readonly string[] = []): string => {
  const keys = [
    ...order.filter((k) => k in r),
    ...Object.keys(r).filter((k) => !order.includes(k)),
  ];
  return keys.length === 0 ? 'none' : keys.map((k) => `${k} ${r[k]!.toFixed(1)} s`).join(', ');
};

export function summaryLines(s: DemoSummary, v: View): string[] {
  const row = (label: string, value: string) => `  ${label.padEnd(16)} ${value}`;
  const lines = [
    row(
      'produced',
      `${s.produced} messages acknowledged by the broker (${s.poisonProduced} poison)`,
    ),
    row('handled', `${s.handled} distinct orders`),
    row('dead-lettered', `${s.deadLettered} (${s.dlqTopicRecords} records on the DLQ topic)`),
    row('duplicates', String(s.duplicates)),
    row('lost', String(s.lost)),
    row(
      'peak lag',
      `${s.peakLag}${s.peakLagAtSeconds === null ? '' : ` at ${s.peakLagAtSeconds.toFixed(0)} s`} (LagMonitor, committed offsets)`,
    ),
    row(
      'peak in-flight',
      Object.entries(s.peakInFlight)
        .filter(([, n]) => n > 0)
        .map(([mode, n]) => `${n} in ${mode} ordering`)
        .join(', ') + `; ${s.peakHandlers} downstream calls at once`,
    ),
  ];
  if (s.drain) {
    lines.push(
      row(
        'time to drain',
        s.drain.seconds === null
          ? `not drained below ${s.drain.mark}`
          : `${s.drain.from} -> under ${s.drain.mark} in ${s.drain.seconds.toFixed(1)} s (up to ${s.drain.peakConsumeRate.toFixed(1)} msg/s)`,
      ),
    );
  }
  if (s.outage) {
    lines.push(
      row(
        'outage',
        `circuit opened after ${s.outage.openedAfterSeconds ?? '-'} s, closed ${s.outage.closedAfterSeconds ?? '-'} s after recovery; ` +
          `${s.outage.deadLettered} dead-lettered; ${s.outage.downstreamFailures} failed downstream calls`,
      ),
    );
  }
  lines.push(
    row('lag status', seconds(s.secondsIn.lagStatus, ['ok', 'warning', 'critical'])),
    row('circuit', seconds(s.secondsIn.circuit, ['closed', 'open', 'half-open'])),
    row('paused (any)', seconds(s.secondsIn.paused)),
    row('steps', seconds(s.secondsIn.step)),
    '',
  );
  for (const c of s.checks) {
    lines.push(`  ${c.ok ? v.green('✓') : v.red('✗')} ${c.name.padEnd(36)} ${v.dim(c.detail)}`);
  }
  lines.push(
    '',
    s.ok
      ? v.green(`  all checks passed in ${s.durationSeconds.toFixed(0)} s`)
      : v.red(
          `  ${s.checks.filter((c) => !c.ok).length} check(s) failed${s.interrupted ? ' (interrupted)' : ''}`,
        ),
  );
  return lines;
}
