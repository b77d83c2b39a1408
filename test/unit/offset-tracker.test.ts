import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeProgress, DoneCursor } from '../../src/consumer/offsets/progress-metadata.js';
import { OffsetTracker } from '../../src/consumer/offsets/tracker.js';

/** The position a changed-only commit would carry now, if any. */
function uncommitted(tracker: OffsetTracker): number | undefined {
  return tracker.progress(true)?.position;
}

/** Marks what the tracker would commit now as confirmed. */
function commitNow(tracker: OffsetTracker): void {
  const progress = tracker.progress(false);
  if (progress !== undefined) tracker.markCommitted(progress);
}

function trackerWith(offsets: readonly number[]): OffsetTracker {
  const tracker = new OffsetTracker();
  for (const offset of offsets) tracker.admit(offset);
  return tracker;
}

describe('OffsetTracker', () => {
  describe('before anything is admitted', () => {
    it('has no commit position, next offset or committed offset', () => {
      const tracker = new OffsetTracker();
      expect(tracker.commitPosition()).toBeUndefined();
      expect(uncommitted(tracker)).toBeUndefined();
      expect(tracker.nextOffset).toBeUndefined();
      expect(tracker.committedOffset).toBeUndefined();
      expect(tracker.pendingCount).toBe(0);
    });

    it('has seen nothing', () => {
      const tracker = new OffsetTracker();
      expect(tracker.seen(0)).toBe(false);
      expect(tracker.seen(1_000_000)).toBe(false);
    });

    it('refuses to complete anything', () => {
      const tracker = new OffsetTracker();
      expect(tracker.complete(0)).toBe(false);
      expect(tracker.pendingCount).toBe(0);
    });
  });

  describe('in-order completion', () => {
    it('commits past each offset as it completes', () => {
      const tracker = trackerWith([10, 11, 12]);
      expect(tracker.commitPosition()).toBe(10);
      expect(tracker.pendingCount).toBe(3);
      expect(tracker.complete(10)).toBe(true);
      expect(tracker.commitPosition()).toBe(11);
      expect(tracker.complete(11)).toBe(true);
      expect(tracker.commitPosition()).toBe(12);
      expect(tracker.complete(12)).toBe(true);
      expect(tracker.commitPosition()).toBe(13);
      expect(tracker.pendingCount).toBe(0);
      expect(tracker.nextOffset).toBe(13);
    });
  });

  describe('out-of-order completion', () => {
    it('holds the commit position at the lowest pending offset', () => {
      const tracker = trackerWith([0, 1, 2, 3, 4]);
      expect(tracker.complete(3)).toBe(true);
      expect(tracker.complete(1)).toBe(true);
      expect(tracker.complete(4)).toBe(true);
      expect(tracker.pendingCount).toBe(2);
      // 0 is still running: nothing may be committed past it.
      expect(tracker.commitPosition()).toBe(0);
      expect(tracker.complete(0)).toBe(true);
      // 1 was already done, 2 is not.
      expect(tracker.commitPosition()).toBe(2);
      expect(tracker.pendingCount).toBe(1);
      expect(tracker.complete(2)).toBe(true);
      // 3 and 4 were done: the position jumps over them to next.
      expect(tracker.commitPosition()).toBe(5);
      expect(tracker.pendingCount).toBe(0);
    });

    it('completes in reverse order and commits everything only at the end', () => {
      const offsets = Array.from({ length: 50 }, (_, i) => 100 + i);
      const tracker = trackerWith(offsets);
      for (const offset of [...offsets].reverse().slice(0, -1)) {
        expect(tracker.complete(offset)).toBe(true);
        expect(tracker.commitPosition()).toBe(100);
      }
      expect(tracker.pendingCount).toBe(1);
      expect(tracker.complete(100)).toBe(true);
      expect(tracker.commitPosition()).toBe(150);
      expect(tracker.pendingCount).toBe(0);
    });

    it('returns false when an offset is completed twice, whether or not it was popped', () => {
      const tracker = trackerWith([0, 1, 2]);
      expect(tracker.complete(2)).toBe(true);
      // 2 is done but still held behind 0 and 1.
      expect(tracker.complete(2)).toBe(false);
      expect(tracker.pendingCount).toBe(2);
      expect(tracker.complete(0)).toBe(true);
      // 0 was popped off the front.
      expect(tracker.complete(0)).toBe(false);
      expect(tracker.pendingCount).toBe(1);
      expect(tracker.commitPosition()).toBe(1);
    });
  });

  describe('unknown offsets', () => {
    it('returns false for offsets that were never admitted, and changes nothing', () => {
      const tracker = trackerWith([10, 12, 20]);
      for (const offset of [9, 11, 13, 19, 21, 1000, -1]) {
        expect(tracker.complete(offset)).toBe(false);
      }
      expect(tracker.pendingCount).toBe(3);
      expect(tracker.commitPosition()).toBe(10);
    });
  });

  describe('gaps (compacted topics, transaction markers)', () => {
    it('accepts non-contiguous offsets and commits across the gaps', () => {
      const tracker = trackerWith([5, 9, 30]);
      expect(tracker.nextOffset).toBe(31);
      expect(tracker.complete(9)).toBe(true);
      expect(tracker.commitPosition()).toBe(5);
      expect(tracker.complete(5)).toBe(true);
      // 6..8 were never delivered: the position goes straight to 30.
      expect(tracker.commitPosition()).toBe(30);
      expect(tracker.complete(30)).toBe(true);
      expect(tracker.commitPosition()).toBe(31);
    });

    it('advanceTo moves the position past trailing control records once all is done', () => {
      const tracker = trackerWith([0, 1]);
      tracker.advanceTo(5);
      expect(tracker.nextOffset).toBe(5);
      // Pending work still holds the position.
      expect(tracker.commitPosition()).toBe(0);
      tracker.complete(0);
      tracker.complete(1);
      expect(tracker.commitPosition()).toBe(5);
    });

    it('advanceTo on an empty tracker sets the position (a batch of only control records)', () => {
      const tracker = new OffsetTracker();
      tracker.advanceTo(42);
      expect(tracker.nextOffset).toBe(42);
      expect(tracker.commitPosition()).toBe(42);
      expect(uncommitted(tracker)).toBe(42);
      expect(tracker.seen(41)).toBe(true);
      expect(tracker.seen(42)).toBe(false);
      tracker.admit(42);
      expect(tracker.commitPosition()).toBe(42);
    });

    it('advanceTo never moves backwards', () => {
      const tracker = trackerWith([10]);
      tracker.complete(10);
      tracker.advanceTo(7);
      expect(tracker.nextOffset).toBe(11);
      expect(tracker.commitPosition()).toBe(11);
      tracker.advanceTo(11);
      expect(tracker.commitPosition()).toBe(11);
    });

    it('admits at the advanced position but not below it', () => {
      const tracker = trackerWith([0]);
      tracker.advanceTo(10);
      expect(() => tracker.admit(9)).toThrow(RangeError);
      tracker.admit(10);
      expect(tracker.nextOffset).toBe(11);
    });
  });

  describe('seen() for refetches after a rejoin', () => {
    it('is true for every offset below the next expected one, admitted or skipped', () => {
      const tracker = trackerWith([3, 4, 8]);
      for (const offset of [0, 3, 4, 5, 7, 8]) expect(tracker.seen(offset)).toBe(true);
      expect(tracker.seen(9)).toBe(false);
      expect(tracker.seen(100)).toBe(false);
    });

    it('stays true after the offsets are done and committed', () => {
      const tracker = trackerWith([0, 1]);
      tracker.complete(0);
      tracker.complete(1);
      commitNow(tracker);
      expect(tracker.committedOffset).toBe(2);
      expect(tracker.seen(0)).toBe(true);
      expect(tracker.seen(1)).toBe(true);
      expect(tracker.seen(2)).toBe(false);
    });
  });

  describe('admit ordering', () => {
    it('throws a RangeError when an offset arrives below the next expected one', () => {
      const tracker = trackerWith([5, 6]);
      expect(() => tracker.admit(6)).toThrow(RangeError);
      expect(() => tracker.admit(2)).toThrow(/offset 2 admitted after 6/);
    });

    it('leaves the state unchanged after a refused admit', () => {
      const tracker = trackerWith([5, 6]);
      expect(() => tracker.admit(4)).toThrow(RangeError);
      expect(tracker.pendingCount).toBe(2);
      expect(tracker.nextOffset).toBe(7);
      expect(tracker.commitPosition()).toBe(5);
      expect(tracker.complete(4)).toBe(false);
    });
  });

  describe('progress() and markCommitted()', () => {
    it('reports progress only when the position or the done offsets above it changed since the last commit', () => {
      const tracker = trackerWith([0, 1, 2, 3]);
      expect(uncommitted(tracker)).toBe(0);
      commitNow(tracker);
      expect(tracker.committedOffset).toBe(0);
      expect(uncommitted(tracker)).toBeUndefined();
      tracker.complete(0);
      expect(uncommitted(tracker)).toBe(1);
      commitNow(tracker);
      expect(uncommitted(tracker)).toBeUndefined();
      // Done above the position: the position stays, the metadata changed.
      tracker.complete(2);
      expect(uncommitted(tracker)).toBe(1);
      expect(tracker.progress(true)?.metadata).toBe('kbp1/1/1.1');
      commitNow(tracker);
      expect(uncommitted(tracker)).toBeUndefined();
      tracker.complete(1);
      expect(uncommitted(tracker)).toBe(3);
      expect(tracker.progress(true)?.metadata).toBeUndefined();
      commitNow(tracker);
      expect(uncommitted(tracker)).toBeUndefined();
    });

    it('keeps the highest committed offset (a late ack of an older commit does not roll it back)', () => {
      const tracker = trackerWith([0, 1, 2]);
      const early = tracker.progress(false)!;
      tracker.complete(0);
      tracker.complete(1);
      tracker.complete(2);
      commitNow(tracker);
      tracker.markCommitted(early);
      expect(tracker.committedOffset).toBe(3);
      expect(uncommitted(tracker)).toBeUndefined();
    });

    it('skips offsets a restored commit marked done, in ascending lookups', () => {
      const tracker = new OffsetTracker();
      tracker.restore([
        [12, 14],
        [20, 21],
      ]);
      const skipped = [10, 11, 12, 13, 14, 19, 20, 21, 30].filter((o) => tracker.markedDone(o));
      expect(skipped).toEqual([12, 13, 20]);
    });

    it('ignores a restore once offsets were admitted', () => {
      const tracker = trackerWith([5]);
      tracker.restore([[6, 8]]);
      expect(tracker.markedDone(6)).toBe(false);
    });
  });

  describe('compaction of the internal array', () => {
    it('keeps working across the compaction threshold (more than 1024 popped)', () => {
      const count = 5000;
      const tracker = new OffsetTracker();
      for (let offset = 0; offset < count; offset += 1) tracker.admit(offset * 2);
      // Complete the first 3000 in order: compaction runs at least once.
      for (let i = 0; i < 3000; i += 1) {
        expect(tracker.complete(i * 2)).toBe(true);
        expect(tracker.commitPosition()).toBe((i + 1) * 2);
      }
      expect(tracker.pendingCount).toBe(count - 3000);
      // Popped offsets are gone, the rest are still found by the search.
      expect(tracker.complete(0)).toBe(false);
      expect(tracker.complete(2 * 2999)).toBe(false);
      expect(tracker.complete(2 * 3000 + 1)).toBe(false);
      expect(tracker.complete(2 * 4999)).toBe(true);
      expect(tracker.complete(2 * 3500)).toBe(true);
      expect(tracker.commitPosition()).toBe(2 * 3000);
      for (let i = 3000; i < count; i += 1) tracker.complete(i * 2);
      expect(tracker.pendingCount).toBe(0);
      expect(tracker.commitPosition()).toBe(2 * (count - 1) + 1);
      // Admission continues after a compaction.
      tracker.admit(20_000);
      expect(tracker.commitPosition()).toBe(20_000);
      expect(tracker.complete(20_000)).toBe(true);
      expect(tracker.commitPosition()).toBe(20_001);
    });

    it('keeps out-of-order done offsets that sit behind the compaction point', () => {
      const tracker = new OffsetTracker();
      for (let offset = 0; offset < 3000; offset += 1) tracker.admit(offset);
      // Done out of order beyond the head, then the head catches up past 1024.
      for (let offset = 1500; offset < 2000; offset += 1) tracker.complete(offset);
      for (let offset = 0; offset < 1200; offset += 1) tracker.complete(offset);
      expect(tracker.commitPosition()).toBe(1200);
      expect(tracker.pendingCount).toBe(3000 - 1200 - 500);
      for (let offset = 1200; offset < 1500; offset += 1) tracker.complete(offset);
      expect(tracker.commitPosition()).toBe(2000);
      expect(tracker.pendingCount).toBe(1000);
      expect(tracker.complete(1999)).toBe(false);
      expect(tracker.complete(2000)).toBe(true);
      expect(tracker.commitPosition()).toBe(2001);
    });
  });

  describe('property: matches a simple model and never commits past unfinished work', () => {
    type Command =
      | { readonly kind: 'admit'; readonly gap: number }
      | { readonly kind: 'complete'; readonly pick: number }
      | { readonly kind: 'completeAny'; readonly delta: number }
      | { readonly kind: 'advance'; readonly delta: number }
      | { readonly kind: 'commit' }
      | { readonly kind: 'admitBelow'; readonly delta: number };

    const command: fc.Arbitrary<Command> = fc.oneof(
      { weight: 5, arbitrary: fc.record({ kind: fc.constant('admit' as const), gap: fc.nat(3) }) },
      {
        weight: 4,
        arbitrary: fc.record({ kind: fc.constant('complete' as const), pick: fc.nat() }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('completeAny' as const),
          delta: fc.integer({ min: -5, max: 5 }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('advance' as const),
          delta: fc.integer({ min: -3, max: 5 }),
        }),
      },
      { weight: 1, arbitrary: fc.constant({ kind: 'commit' as const }) },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('admitBelow' as const),
          delta: fc.integer({ min: 1, max: 5 }),
        }),
      },
    );

    it('holds after every step of random admit / complete / advanceTo / markCommitted', () => {
      fc.assert(
        fc.property(fc.nat(1000), fc.array(command, { maxLength: 300 }), (start, commands) => {
          const tracker = new OffsetTracker();
          // The model: offsets admitted (ascending), which of them are done, the next position.
          const admitted: number[] = [];
          const done = new Set<number>();
          let next: number | undefined;
          let committed: number | undefined;
          let lastPosition: number | undefined;
          let committedDone = '';

          const modelPosition = (): number | undefined =>
            admitted.find((o) => !done.has(o)) ?? next;
          /** The done offsets above the position, as a comparable key. */
          const doneAbove = (): string => {
            const position = modelPosition();
            return admitted.filter((o) => done.has(o) && o > (position ?? 0)).join(',');
          };

          for (const cmd of commands) {
            let admittedNew = false;
            switch (cmd.kind) {
              case 'admit': {
                const offset = (next ?? start) + cmd.gap;
                tracker.admit(offset);
                admitted.push(offset);
                next = offset + 1;
                admittedNew = true;
                break;
              }
              case 'complete': {
                const open = admitted.filter((o) => !done.has(o));
                if (open.length === 0) break;
                const offset = open[cmd.pick % open.length]!;
                expect(tracker.complete(offset)).toBe(true);
                done.add(offset);
                break;
              }
              case 'completeAny': {
                const base = admitted.length > 0 ? admitted[admitted.length - 1]! : start;
                const offset = base + cmd.delta;
                const expected = admitted.includes(offset) && !done.has(offset);
                expect(tracker.complete(offset)).toBe(expected);
                if (expected) done.add(offset);
                break;
              }
              case 'advance': {
                // Kafka offsets are never negative: the admitter advances to a batch's
                // lastOffset + 1 >= 1. Below 0 the metadata position would be "-1", which
                // decodeProgress rightly refuses (seed 882919727 found start 0, delta -1).
                const target = Math.max(0, (next ?? start) + cmd.delta);
                tracker.advanceTo(target);
                if (next === undefined || target > next) next = target;
                break;
              }
              case 'commit': {
                const progress = tracker.progress(false);
                if (progress === undefined) break;
                tracker.markCommitted(progress);
                if (committed === undefined || progress.position > committed)
                  committed = progress.position;
                committedDone = doneAbove();
                break;
              }
              case 'admitBelow': {
                if (next === undefined) break;
                const before = tracker.pendingCount;
                expect(() => tracker.admit(next! - cmd.delta)).toThrow(RangeError);
                expect(tracker.pendingCount).toBe(before);
                break;
              }
            }

            const position = tracker.commitPosition();
            expect(position).toBe(modelPosition());
            expect(tracker.pendingCount).toBe(admitted.filter((o) => !done.has(o)).length);
            expect(tracker.nextOffset).toBe(next);
            expect(tracker.committedOffset).toBe(committed);
            expect(uncommitted(tracker)).toBe(
              position === undefined || (position === committed && doneAbove() === committedDone)
                ? undefined
                : position,
            );
            // The metadata marks exactly the admitted offsets done above the position.
            if (position !== undefined) {
              const metadata = tracker.progress(false)?.metadata;
              const decoded = decodeProgress(metadata, position);
              const cursor = new DoneCursor(decoded.kind === 'ranges' ? decoded.done : []);
              const marked = admitted.filter((o) => o >= position && cursor.has(o));
              expect(marked.join(',')).toBe(doneAbove());
            }
            if (next !== undefined) {
              expect(tracker.seen(next - 1)).toBe(true);
              expect(tracker.seen(next)).toBe(false);
            }

            // At-least-once: the position never passes an offset that is not done.
            if (position !== undefined) {
              for (const offset of admitted) {
                if (!done.has(offset)) expect(position).toBeLessThanOrEqual(offset);
              }
            }
            // Nothing can be admitted below the position, so it never moves backwards.
            if (lastPosition !== undefined && position !== undefined && !admittedNew) {
              expect(position).toBeGreaterThanOrEqual(lastPosition);
            }
            if (lastPosition !== undefined && position !== undefined && admittedNew) {
              // Admitted offsets are >= next >= position, so even admission never lowers it.
              expect(position).toBeGreaterThanOrEqual(lastPosition);
            }
            lastPosition = position;
          }
        }),
        {
          numRuns: 300,
          examples: [
            // Once a counterexample (with the target unclamped): advancing from start 0 by -1
            // admitted -1 and 0, and completing 0 out of order committed "kbp1/-1/1.1".
            [
              0,
              [
                { kind: 'advance', delta: -1 },
                { kind: 'admit', gap: 0 },
                { kind: 'admit', gap: 0 },
                { kind: 'complete', pick: 21034905 },
              ],
            ],
          ],
        },
      );
    });

    it('holds for long runs that cross the compaction threshold', () => {
      fc.assert(
        fc.property(
          fc.array(fc.nat(2), { minLength: 2500, maxLength: 3000 }),
          fc.array(fc.nat(), { minLength: 3000, maxLength: 3000 }),
          (gaps, picks) => {
            const tracker = new OffsetTracker();
            const admitted: number[] = [];
            const open: number[] = [];
            let offset = 0;
            for (const gap of gaps) {
              offset += gap;
              tracker.admit(offset);
              admitted.push(offset);
              open.push(offset);
              offset += 1;
            }
            // Complete in a random order, mostly near the front so the head moves.
            for (const pick of picks) {
              if (open.length === 0) break;
              const index = pick % Math.min(open.length, 64);
              const [chosen] = open.splice(index, 1);
              expect(tracker.complete(chosen!)).toBe(true);
              // `open` stays ascending, so its first entry is the lowest unfinished offset.
              const lowestOpen = open[0] ?? offset;
              expect(tracker.commitPosition()).toBe(lowestOpen);
              expect(tracker.pendingCount).toBe(open.length);
            }
          },
        ),
        { numRuns: 10 },
      );
    });
  });
});
