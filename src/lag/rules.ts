import { lagOf, type LagSample } from './samples.js';

/**
 * Burrow's consumer evaluation rules, read from periodic admin samples
 * instead of from the commit log.
 *
 * Burrow (1.2.1, `evaluator/caching.go`) keeps the last `intervals` commits
 * of each partition, each with the lag at the time of the commit, and
 * evaluates in this order, the first match winning:
 * 1. lag is 0 now or at any stored commit: OK;
 * 2. a stored commit is lower than the one before it: REWIND;
 * 3. now - last commit > last commit - first commit: STOP;
 * 4. every stored commit has the same offset: STALL;
 * 5. the lag never falls from one stored commit to the next: WARN (falling behind).
 *
 * Before any of 2-5, Burrow requires the current lag to be > 0.
 *
 * The admin API shows committed offsets, not commits: a commit that
 * repeats the offset is invisible, and so is the time of each commit. What
 * this module does in their place is stated at each rule below and in
 * docs/lag-monitor.md.
 *
 * @see https://github.com/linkedin/Burrow/wiki/Consumer-Lag-Evaluation-Rules
 */

/**
 * The rules. For a partition at most one is true, the first in Burrow's
 * order of precedence (rewind, stopped, stalled, fallingBehind); for the
 * group, each is true when it holds for any partition.
 */
export interface LagRules {
  /** The committed offset went back, and the group has had lag ever since. Burrow: REWIND. */
  readonly rewind: boolean;
  /** No commit moved the offset for longer than the group's cadence warrants, the lag is > 0, and no live member owns the partition. Burrow: STOP. */
  readonly stopped: boolean;
  /** As `stopped`, but a live member of the group owns the partition: it is there, and not moving. Burrow: STALL. */
  readonly stalled: boolean;
  /** The offset moves at the group's cadence, the lag was > 0 in every sample, never fell from one move to the next, and grew. Burrow: WARN. */
  readonly fallingBehind: boolean;
}

export type LagRuleName = keyof LagRules;

/** Rule names in Burrow's order of precedence. */
export const RULE_NAMES: readonly LagRuleName[] = ['rewind', 'stopped', 'stalled', 'fallingBehind'];

export const NO_RULES: LagRules = Object.freeze({
  rewind: false,
  stopped: false,
  stalled: false,
  fallingBehind: false,
});

/** One observed move of the committed offset: a commit that changed it landed since the previous sample. */
export interface CommitMove {
  readonly at: number;
  readonly offset: number;
  /** The lag of the sample that saw the move (Burrow stores the lag at each commit). */
  readonly lag: number;
}

export interface RuleSettings {
  /** The sampling interval: the resolution of every time below. */
  readonly intervalMs: number;
  /** The longest wait for a move before `stopped` / `stalled`, whatever the cadence. */
  readonly stoppedAfterMs: number;
  /** Moves needed in the window before `fallingBehind` can hold. */
  readonly ruleMinSamples: number;
  readonly windowMs: number;
  /** At most this many moves are kept (Burrow's `intervals`). */
  readonly windowSamples: number;
}

/**
 * What one partition's commits did, kept across rounds (the sample window
 * may be shorter than a stop): when the offset last moved or the lag was
 * last 0, and the recent moves.
 */
export class CommitTrail {
  #lastOffset: number | null | undefined;
  /** The last sample at which the group was not behind a stuck offset: the offset moved, or the lag was 0. */
  #busySince = 0;
  #rewindAt: number | undefined;
  #moves: CommitMove[] = [];

  /** Feeds one sample (in time order). */
  observe(sample: LagSample): void {
    const lag = lagOf(sample);
    const offset = sample.committedOffset;
    if (this.#lastOffset === undefined) {
      this.#lastOffset = offset;
      this.#busySince = sample.at;
      return;
    }
    if (offset !== this.#lastOffset) {
      if (offset !== null && this.#lastOffset !== null && offset < this.#lastOffset) {
        this.#rewindAt = sample.at;
      }
      if (offset !== null) this.#moves.push({ at: sample.at, offset, lag });
      this.#lastOffset = offset;
      this.#busySince = sample.at;
    }
    if (lag === 0) {
      this.#busySince = sample.at;
      this.#rewindAt = undefined;
    }
  }

  /**
   * The moves kept: the last `windowSamples`, whatever their age, as
   * Burrow keeps the last `intervals` commits. The cadence read from them
   * must survive a stop longer than the window.
   */
  #keep(settings: RuleSettings): readonly CommitMove[] {
    const drop = this.#moves.length - settings.windowSamples;
    if (drop > 0) this.#moves.splice(0, drop);
    return this.#moves;
  }

  /**
   * Evaluates the rules at `now` (the time of the newest sample).
   * @param samples The partition's sample window, oldest first; the newest is `now`'s.
   * @param owned Whether a live member of the group owns the partition; `null` when unknown (counted as not owned).
   */
  evaluate(samples: readonly LagSample[], owned: boolean | null, settings: RuleSettings): LagRules {
    const current = samples.at(-1);
    if (current === undefined || lagOf(current) === 0) return NO_RULES;
    const now = current.at;
    const moves = this.#keep(settings);

    // REWIND. Burrow needs lag at every stored commit; here the lag has
    // been > 0 in every sample since the offset went back (a lag of 0
    // clears the mark), for as long as the rewind is in the window.
    if (this.#rewindAt !== undefined && this.#rewindAt >= now - settings.windowMs) {
      return { ...NO_RULES, rewind: true };
    }

    // STOP and STALL. Burrow: the time since the last commit exceeds the
    // span of the stored commits. Here: the time since the offset last
    // moved (or the lag was last 0) exceeds what the group's cadence
    // warrants (see warrantedMs), never more than `stoppedAfterMs`. Burrow tells STALL (commits that repeat the offset)
    // from STOP (no commits); an admin poll cannot see a repeated commit,
    // so a live owner of the partition (from describeGroups) takes its
    // place.
    const stuckFor = now - this.#busySince;
    if (stuckFor >= warrantedMs(moves, settings)) {
      return owned === true ? { ...NO_RULES, stalled: true } : { ...NO_RULES, stopped: true };
    }

    // WARN (falling behind), over the moves in the window as Burrow reads
    // its commits, and only while the offset still moves at the group's
    // cadence: a consumer that just died is on its way to `stopped`, not
    // slower.
    if (stuckFor > cadenceMs(moves, settings)) return NO_RULES;
    const recent = moves.filter((m) => m.at >= now - settings.windowMs);
    if (recent.length < settings.ruleMinSamples) return NO_RULES;
    if (samples.some((s) => lagOf(s) === 0)) return NO_RULES;
    for (let i = 1; i < recent.length; i += 1) {
      if (recent[i]!.lag < recent[i - 1]!.lag) return NO_RULES;
    }
    // Burrow also warns on a lag that stays level; a level lag keeps up
    // with the producer, so here it must also have grown.
    if (!(recent.at(-1)!.lag > recent[0]!.lag)) return NO_RULES;
    return { ...NO_RULES, fallingBehind: true };
  }
}

/** The longest gap between two moves in the window, never below two sampling intervals. */
function cadenceMs(moves: readonly CommitMove[], settings: RuleSettings): number {
  let gap = 0;
  for (let i = 1; i < moves.length; i += 1) gap = Math.max(gap, moves[i]!.at - moves[i - 1]!.at);
  return Math.max(2 * settings.intervalMs, gap);
}

/**
 * How long the offset may stand still before the group counts as stopped:
 * Burrow's "span of the stored commits", and at least twice the longest
 * gap between them (two moves alone span one gap); unknown cadence (fewer
 * than two moves in the window) waits the whole `stoppedAfterMs`.
 */
export function warrantedMs(moves: readonly CommitMove[], settings: RuleSettings): number {
  const first = moves[0];
  const last = moves.at(-1);
  if (moves.length < 2 || first === undefined || last === undefined) return settings.stoppedAfterMs;
  const span = Math.max(last.at - first.at, 2 * cadenceMs(moves, settings));
  return Math.min(settings.stoppedAfterMs, span);
}

/** The group: each rule true when it holds for any partition. */
export function combineRules(rules: readonly LagRules[]): LagRules {
  return {
    rewind: rules.some((r) => r.rewind),
    stopped: rules.some((r) => r.stopped),
    stalled: rules.some((r) => r.stalled),
    fallingBehind: rules.some((r) => r.fallingBehind),
  };
}

/** The first rule that holds, in Burrow's order; `null` when none does. */
export function firstRule(rules: LagRules): LagRuleName | null {
  return RULE_NAMES.find((name) => rules[name]) ?? null;
}
