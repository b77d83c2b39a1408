import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CommitTrail,
  NO_RULES,
  firstRule,
  warrantedMs,
  type LagRuleName,
  type RuleSettings,
} from '../../src/lag/rules.js';
import type { LagSample } from '../../src/lag/samples.js';

const settings: RuleSettings = {
  intervalMs: 1000,
  stoppedAfterMs: 10_000,
  ruleMinSamples: 3,
  windowMs: 10_000,
  windowSamples: 11,
};

/**
 * Feeds one sample per second (end and committed offsets as functions of
 * the second) and returns the rule in force after each, as the monitor
 * evaluates it (the window holds the samples of the last `windowMs`).
 */
function run(
  seconds: number,
  end: (s: number) => number,
  committed: (s: number) => number | null,
  owned: (s: number) => boolean | null = () => false,
): (LagRuleName | null)[] {
  const trail = new CommitTrail();
  const window: LagSample[] = [];
  const out: (LagRuleName | null)[] = [];
  for (let s = 0; s < seconds; s += 1) {
    const sample = { at: s * 1000, endOffset: end(s), committedOffset: committed(s) };
    window.push(sample);
    while (window[0]!.at < sample.at - settings.windowMs) window.shift();
    trail.observe(sample);
    out.push(firstRule(trail.evaluate(window, owned(s), settings)));
  }
  return out;
}

describe('CommitTrail: Burrow rules from admin samples', () => {
  it('nothing holds for a group that keeps up, even with lag in every sample', () => {
    const rules = run(
      40,
      (s) => 100 * s + 50,
      (s) => 100 * s + (s % 2 === 0 ? 20 : 45),
    );
    expect(rules.every((r) => r === null)).toBe(true);
  });

  it('stopped: the offset stands still with lag, no live owner, after the cadence warrants (here 4 s)', () => {
    // Commits every second for 10 s, then none while 50 msg/s arrive.
    const rules = run(
      30,
      (s) => 50 * s + 10,
      (s) => 50 * Math.min(s, 10),
    );
    const first = rules.indexOf('stopped');
    // Moves 1 s apart: warranted = max(span, 2 x max(gap, 2 intervals)) capped at 10 s.
    expect(first).toBe(10 + 9);
    expect(rules.slice(0, first).every((r) => r === null)).toBe(true);
    expect(rules.slice(first).every((r) => r === 'stopped')).toBe(true);
  });

  it('stopped within stoppedAfterMs whatever the cadence, and never fallingBehind on the way', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }), // commit every n seconds
        fc.integer({ min: 5, max: 40 }), // commits before the stop
        fc.integer({ min: 1, max: 200 }), // produce rate
        (every, commits, rate) => {
          const stopAt = every * commits;
          const committed = (s: number) => rate * Math.floor(Math.min(s, stopAt) / every) * every;
          const rules = run(stopAt + 15, (s) => rate * s + 1, committed);
          const after = rules.slice(stopAt);
          const first = after.indexOf('stopped');
          expect(first).toBeGreaterThanOrEqual(0);
          expect(first).toBeLessThanOrEqual(settings.stoppedAfterMs / 1000);
          expect(after.slice(0, first).every((r) => r === null)).toBe(true);
        },
      ),
    );
  });

  it('stalled instead of stopped while a live member owns the partition', () => {
    const rules = run(
      30,
      (s) => 50 * s + 10,
      (s) => 50 * Math.min(s, 10),
      (s) => s < 25,
    );
    expect(rules[20]).toBe('stalled');
    expect(rules[24]).toBe('stalled');
    // The member left (session expired): stopped.
    expect(rules[25]).toBe('stopped');
  });

  it('unknown ownership counts as not owned (Burrow calls a silent group stopped)', () => {
    const rules = run(
      25,
      (s) => 50 * s + 10,
      (s) => 50 * Math.min(s, 10),
      () => null,
    );
    expect(rules.at(-1)).toBe('stopped');
  });

  it('a group idle with lag 0, then one new message: nothing (the wait counts from the lag)', () => {
    // No production for 60 s, the group caught up; a message arrives at 60 s
    // and is consumed within 2 s.
    const rules = run(
      64,
      (s) => (s < 60 ? 100 : 101),
      (s) => (s < 62 ? 100 : 101),
    );
    expect(rules.every((r) => r === null)).toBe(true);
  });

  it('without any move seen, waits the whole stoppedAfterMs', () => {
    const rules = run(
      15,
      (s) => 10 * s + 10,
      () => 0,
    );
    expect(rules.indexOf('stopped')).toBe(10);
  });

  it('rewind: the offset went back; held while the lag stays > 0, cleared by a lag of 0', () => {
    const committed = (s: number) => (s < 5 ? 100 * s : s < 12 ? 0 + 10 * (s - 5) : 1000);
    const rules = run(14, () => 1000, committed);
    expect(rules.slice(0, 5).every((r) => r === null)).toBe(true);
    expect(rules.slice(5, 12).every((r) => r === 'rewind')).toBe(true);
    expect(rules[12]).toBe(null);
  });

  it('a level lag keeps up: not fallingBehind (Burrow would warn)', () => {
    const rules = run(
      20,
      (s) => 50 * s + 10,
      (s) => 50 * s,
    );
    expect(rules.every((r) => r === null)).toBe(true);
  });

  it('fallingBehind: consuming at the cadence, the lag never falling from one move to the next', () => {
    const rules = run(
      12,
      (s) => 1000 + 100 * s,
      (s) => 500 + 60 * s,
    );
    expect(rules.slice(3)).toEqual(Array.from({ length: 9 }, () => 'fallingBehind'));
    // One move where the group gained on the producer: not falling behind.
    const gained = run(
      12,
      (s) => 1000 + 100 * s,
      (s) => 500 + 60 * s + (s >= 8 ? 300 : 0),
    );
    expect(gained.slice(8, 12).every((r) => r === null)).toBe(true);
  });

  it('a falling-behind group that dies is never fallingBehind once it missed its cadence', () => {
    const rules = run(
      40,
      (s) => 1000 + 100 * s,
      (s) => 500 + 60 * Math.min(s, 12),
    );
    expect(rules[11]).toBe('fallingBehind');
    // Moves 1 s apart: cadence = 2 intervals; past it, nothing until stopped.
    expect(rules.slice(15, rules.indexOf('stopped')).every((r) => r === null)).toBe(true);
    expect(rules.at(-1)).toBe('stopped');
  });

  it('no rule while the lag is 0 now', () => {
    const trail = new CommitTrail();
    const s = { at: 0, endOffset: 10, committedOffset: 10 };
    trail.observe(s);
    expect(trail.evaluate([s], false, settings)).toEqual(NO_RULES);
  });

  it('warrantedMs: span of the moves, at least twice the longest gap (two intervals or more), at most stoppedAfterMs', () => {
    const moves = (ats: number[]) => ats.map((at, i) => ({ at, offset: i, lag: 1 }));
    expect(warrantedMs(moves([0]), settings)).toBe(10_000);
    expect(warrantedMs(moves([0, 1000]), settings)).toBe(4000);
    expect(warrantedMs(moves([0, 3000]), settings)).toBe(6000);
    expect(warrantedMs(moves([0, 1000, 2000, 3000, 4000, 5000]), settings)).toBe(5000);
    expect(warrantedMs(moves([0, 1000, 2000, 3000, 4000, 5000, 20_000]), settings)).toBe(10_000);
  });
});
