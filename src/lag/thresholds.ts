import type { LagStatus } from './lag-status.js';

/**
 * The status (ok, warning, critical) from marks on three measures, with
 * hysteresis. Lag marks in messages, time-lag marks in seconds, rate marks
 * in messages per second of lag growth; each optional.
 */
export interface LagThresholds {
  /**
   * Lag at or above this is `warning`.
   * @default none: lag never raises `warning`
   */
  readonly warningLag?: number;
  /**
   * Lag at or above this is `critical`.
   * @default none: lag never raises `critical`
   */
  readonly criticalLag?: number;
  /**
   * Time lag at or above this is `warning`. Applied to the lower bound of
   * the time lag (`timeLag.minSeconds`), so an uncertain estimate never
   * raises a status: only a time lag known to have reached the mark does.
   * @default none: time lag never raises `warning`
   */
  readonly warningTimeLagSeconds?: number;
  /**
   * Time lag (lower bound) at or above this is `critical`.
   * @default none: time lag never raises `critical`
   */
  readonly criticalTimeLagSeconds?: number;
  /**
   * Lag growing at this many messages per second or faster (least-squares
   * slope of the lag over the window) is `warning`.
   * @default none: the lag's growth never raises `warning`
   */
  readonly warningRatePerSec?: number;
  /**
   * Lag growing at this many messages per second or faster is `critical`.
   * @default none: the lag's growth never raises `critical`
   */
  readonly criticalRatePerSec?: number;
  /**
   * Hysteresis: a status is left downwards only once every measure is below
   * its mark times this ratio, so a lag hovering around a mark does not flap.
   * In (0, 1]; 1 turns hysteresis off.
   * @default 0.8
   */
  readonly clearRatio?: number;
}

export const DEFAULT_CLEAR_RATIO = 0.8;

/** The keys of the marks, in the order reasons name them. */
export const MARK_KEYS = [
  'warningLag',
  'criticalLag',
  'warningTimeLagSeconds',
  'criticalTimeLagSeconds',
  'warningRatePerSec',
  'criticalRatePerSec',
] as const;

export interface LagMeasures {
  readonly lag: number;
  /** The time lag the marks are applied to (its lower bound); `null`: not known, the time marks are not applied. */
  readonly timeLagSeconds: number | null;
  /** Lag growth in msg/s; `null`: not measurable yet, the rate marks are not applied. */
  readonly rateOfChange?: number | null;
}

export interface StatusDecision {
  readonly status: LagStatus;
  /** Why, naming the measure, its value and the mark. */
  readonly reason: string;
}

const RANK: Record<LagStatus, number> = { ok: 0, warning: 1, critical: 2 };
const BY_RANK: readonly LagStatus[] = ['ok', 'warning', 'critical'];

interface Dimension {
  readonly name: 'lag' | 'time lag' | 'lag rate';
  readonly value: number | null;
  readonly unit: string;
  readonly marks: Readonly<Record<'warning' | 'critical', readonly [string, number | undefined]>>;
}

function dimensions(measures: LagMeasures, t: LagThresholds): Dimension[] {
  return [
    {
      name: 'lag',
      value: measures.lag,
      unit: '',
      marks: {
        warning: ['warningLag', t.warningLag],
        critical: ['criticalLag', t.criticalLag],
      },
    },
    {
      name: 'time lag',
      value: measures.timeLagSeconds,
      unit: ' s',
      marks: {
        warning: ['warningTimeLagSeconds', t.warningTimeLagSeconds],
        critical: ['criticalTimeLagSeconds', t.criticalTimeLagSeconds],
      },
    },
    {
      name: 'lag rate',
      value: measures.rateOfChange ?? null,
      unit: ' msg/s',
      marks: {
        warning: ['warningRatePerSec', t.warningRatePerSec],
        critical: ['criticalRatePerSec', t.criticalRatePerSec],
      },
    },
  ];
}

/** The highest level whose mark (times `factor`) the measure reaches. */
function levelOf(d: Dimension, factor: number): LagStatus {
  if (d.value === null) return 'ok';
  const critical = d.marks.critical[1];
  if (critical !== undefined && d.value >= critical * factor) return 'critical';
  const warning = d.marks.warning[1];
  if (warning !== undefined && d.value >= warning * factor) return 'warning';
  return 'ok';
}

const round = (n: number): number => Math.round(n * 100) / 100;

/**
 * The next status from the previous one, with hysteresis:
 *
 * - raised = the highest level any measure reaches at its mark (>=);
 * - held = the highest level any measure reaches at its mark × `clearRatio`;
 * - next = max(raised, min(previous, held)).
 *
 * So a status rises as soon as a mark is reached, and falls only when every
 * measure is below the clear mark of the level it leaves (and then to the
 * level the clear marks still hold). A measure that is `null` or has no mark
 * counts as `ok`. For fixed `previous` and marks, the result never decreases
 * as a measure increases.
 */
export function nextStatus(
  previous: LagStatus,
  measures: LagMeasures,
  thresholds: LagThresholds,
): StatusDecision {
  const ratio = thresholds.clearRatio ?? DEFAULT_CLEAR_RATIO;
  const dims = dimensions(measures, thresholds);
  const raised = Math.max(...dims.map((d) => RANK[levelOf(d, 1)]));
  const held = Math.max(...dims.map((d) => RANK[levelOf(d, ratio)]));
  const next = Math.max(raised, Math.min(RANK[previous], held));
  const status = BY_RANK[next]!;
  return { status, reason: explain(previous, status, dims, ratio) };
}
function explain(previous: LagStatus, status: LagStatus, dims: Dimension[], ratio: number): string {
  const show = (d: Dimension): string => `${d.name} ${round(d.value ?? Number.NaN)}${d.unit}`;
  if (status === 'ok' && previous === 'ok') return 'below every mark';
  if (RANK[status] >= RANK[previous]) {
    // Rose, or stayed up: name each measure at or above a mark of this level.
    const level = status as 'warning' | 'critical';
    const reached = dims
      .filter((d) => levelOf(d, 1) === level)
      .map((d) => `${show(d)} >= ${d.marks[level][0]} ${round(d.marks[level][1]!)}${d.unit}`);
    if (reached.length > 0) return reached.join(' and ');
    // Staying up on hysteresis alone.
    const holding = dims
      .filter((d) => RANK[levelOf(d, ratio)] >= RANK[level])
      .map((d) => {
        const mark = d.marks[levelOf(d, ratio) as 'warning' | 'critical'];
        return `${show(d)} >= ${round(mark[1]! * ratio)}${d.unit} (${mark[0]} ${round(mark[1]!)} × clearRatio ${ratio})`;
      });
    return `${holding.join(' and ')}: ${level} held`;
  }
  // Fell: every measure is below the clear marks of the level it left.
  const left = previous as 'warning' | 'critical';
  const below = dims
    .filter((d) => d.value !== null && d.marks[left][1] !== undefined)
    .map(
      (d) =>
        `${show(d)} < ${round(d.marks[left][1]! * ratio)}${d.unit} (${d.marks[left][0]} ${round(d.marks[left][1]!)} × clearRatio ${ratio})`,
    );
  return below.length > 0 ? below.join(' and ') : `no ${left} mark applies`;
}
