import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Lanes, laneKeyOf, type LaneItem } from '../../src/consumer/dispatch/lanes.js';

interface Item extends LaneItem {
  readonly id: number;
}

function recordingLanes(): { lanes: Lanes<Item>; started: Item[] } {
  const started: Item[] = [];
  const lanes = new Lanes<Item>((item) => started.push(item));
  return { lanes, started };
}

describe('laneKeyOf', () => {
  const key = (s: string): Buffer => Buffer.from(s);

  describe("'partition' mode", () => {
    it('has one lane per topic-partition, whatever the key', () => {
      expect(laneKeyOf('partition', 't', 0, key('a'))).toBe(
        laneKeyOf('partition', 't', 0, key('b')),
      );
      expect(laneKeyOf('partition', 't', 0, null)).toBe(laneKeyOf('partition', 't', 0, key('a')));
      expect(laneKeyOf('partition', 't', 0, null)).not.toBe(laneKeyOf('partition', 't', 1, null));
      expect(laneKeyOf('partition', 't', 0, null)).not.toBe(laneKeyOf('partition', 'u', 0, null));
    });

    it('does not confuse topic and partition digits', () => {
      expect(laneKeyOf('partition', 't1', 1, null)).not.toBe(laneKeyOf('partition', 't', 11, null));
    });
  });

  describe("'key' mode", () => {
    it('has one lane per key within a partition', () => {
      expect(laneKeyOf('key', 't', 0, key('a'))).toBe(laneKeyOf('key', 't', 0, key('a')));
      expect(laneKeyOf('key', 't', 0, key('a'))).not.toBe(laneKeyOf('key', 't', 0, key('b')));
      // The same key on another partition or topic is another lane.
      expect(laneKeyOf('key', 't', 0, key('a'))).not.toBe(laneKeyOf('key', 't', 1, key('a')));
      expect(laneKeyOf('key', 't', 0, key('a'))).not.toBe(laneKeyOf('key', 'u', 0, key('a')));
    });

    it('gives the null key a lane of its own, distinct from every real key', () => {
      const nullLane = laneKeyOf('key', 't', 0, null);
      expect(nullLane).toBe(laneKeyOf('key', 't', 0, null));
      for (const k of ['', '∅', 'null', '|∅', 'k']) {
        expect(laneKeyOf('key', 't', 0, key(k))).not.toBe(nullLane);
      }
      expect(laneKeyOf('key', 't', 0, Buffer.alloc(0))).not.toBe(nullLane);
    });

    it('keeps binary keys that are not valid UTF-8 distinct', () => {
      const keys = [
        Buffer.from([0xff]),
        Buffer.from([0xfe]),
        Buffer.from([0xc3, 0xbf]), // 'ÿ' in UTF-8
        Buffer.from([0x80]),
        Buffer.from([0x00]),
        Buffer.from([0x00, 0x00]),
        Buffer.from([0xef, 0xbf, 0xbd]), // U+FFFD, what a lossy UTF-8 decode would give
      ];
      const lanes = new Set(keys.map((k) => laneKeyOf('key', 't', 0, k)));
      expect(lanes.size).toBe(keys.length);
    });

    it('never differs from a partition lane key only by a coincidence of strings', () => {
      // A key lane is not the partition lane of another partition.
      expect(laneKeyOf('key', 't', 1, key(''))).not.toBe(laneKeyOf('partition', 't', 1, null));
    });

    it('property: distinct byte strings give distinct lanes, equal ones the same lane', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ maxLength: 16 }), (a, b) => {
          const same = Buffer.from(a).equals(Buffer.from(b));
          const laneA = laneKeyOf('key', 'topic', 3, Buffer.from(a));
          const laneB = laneKeyOf('key', 'topic', 3, Buffer.from(b));
          expect(laneA === laneB).toBe(same);
        }),
      );
    });
  });

  describe("'unordered' mode", () => {
    it('has no lane at all', () => {
      expect(laneKeyOf('unordered', 't', 0, key('a'))).toBeUndefined();
      expect(laneKeyOf('unordered', 't', 0, null)).toBeUndefined();
    });
  });
});

describe('Lanes', () => {
  it('starts the first item of a lane at once', () => {
    const { lanes, started } = recordingLanes();
    lanes.push({ id: 1, laneKey: 'a' });
    expect(started.map((i) => i.id)).toEqual([1]);
    expect(lanes.activeLanes).toBe(1);
  });

  it('runs one item at a time per lane, in push order', () => {
    const { lanes, started } = recordingLanes();
    const items = [1, 2, 3].map((id) => ({ id, laneKey: 'a' }));
    for (const item of items) lanes.push(item);
    expect(started.map((i) => i.id)).toEqual([1]);
    lanes.done(items[0]!);
    expect(started.map((i) => i.id)).toEqual([1, 2]);
    lanes.done(items[1]!);
    expect(started.map((i) => i.id)).toEqual([1, 2, 3]);
    expect(lanes.activeLanes).toBe(1);
    lanes.done(items[2]!);
    expect(lanes.activeLanes).toBe(0);
  });

  it('take hands the next item of the lane to the caller instead of starting it', () => {
    const { lanes, started } = recordingLanes();
    const items = [1, 2, 3].map((id) => ({ id, laneKey: 'a' }));
    for (const item of items) lanes.push(item);
    expect(lanes.take(items[0]!)).toBe(items[1]);
    expect(lanes.take(items[1]!)).toBe(items[2]);
    expect(started.map((i) => i.id)).toEqual([1]);
    expect(lanes.take(items[2]!)).toBeUndefined();
    expect(lanes.activeLanes).toBe(0);
    // The lane is closed: the next push starts at once again.
    lanes.push({ id: 4, laneKey: 'a' });
    expect(started.map((i) => i.id)).toEqual([1, 4]);
  });

  it('keeps push order across many items, also while the lane compacts its queue', () => {
    const { lanes, started } = recordingLanes();
    const count = 5000;
    const items: Item[] = Array.from({ length: count }, (_, id) => ({ id, laneKey: 'a' }));
    let current = items[0]!;
    lanes.push(current);
    let pushed = 1;
    const order = [current.id];
    // Interleave pushes and takes so compaction happens with items on both sides of the head.
    while (order.length < count) {
      for (let i = 0; i < 3 && pushed < count; i += 1) lanes.push(items[pushed++]!);
      const next = lanes.take(current);
      if (next === undefined) break;
      order.push(next.id);
      current = next;
    }
    expect(order).toEqual(items.map((i) => i.id));
    expect(started).toHaveLength(1);
    expect(lanes.take(current)).toBeUndefined();
  });

  it('runs different lanes side by side', () => {
    const { lanes, started } = recordingLanes();
    lanes.push({ id: 1, laneKey: 'a' });
    lanes.push({ id: 2, laneKey: 'b' });
    lanes.push({ id: 3, laneKey: 'a' });
    lanes.push({ id: 4, laneKey: 'c' });
    expect(started.map((i) => i.id)).toEqual([1, 2, 4]);
    expect(lanes.activeLanes).toBe(3);
  });

  it('a slow lane does not hold another lane back', () => {
    const { lanes, started } = recordingLanes();
    const slow = { id: 1, laneKey: 'slow' };
    lanes.push(slow);
    lanes.push({ id: 2, laneKey: 'slow' });
    const fast = [3, 4, 5].map((id) => ({ id, laneKey: 'fast' }));
    for (const item of fast) lanes.push(item);
    for (const item of fast) lanes.done(item);
    expect(started.map((i) => i.id)).toEqual([1, 3, 4, 5]);
    lanes.done(slow);
    expect(started.map((i) => i.id)).toEqual([1, 3, 4, 5, 2]);
  });

  it('starts unordered items (no lane) at once, without counting them as lanes', () => {
    const { lanes, started } = recordingLanes();
    lanes.push({ id: 1, laneKey: undefined });
    lanes.push({ id: 2, laneKey: undefined });
    lanes.push({ id: 3, laneKey: undefined });
    expect(started.map((i) => i.id)).toEqual([1, 2, 3]);
    expect(lanes.activeLanes).toBe(0);
    lanes.done({ id: 1, laneKey: undefined });
    expect(started).toHaveLength(3);
  });

  it('a lane emptied and reused starts its next item at once', () => {
    const { lanes, started } = recordingLanes();
    const first = { id: 1, laneKey: 'a' };
    lanes.push(first);
    lanes.done(first);
    expect(lanes.activeLanes).toBe(0);
    lanes.push({ id: 2, laneKey: 'a' });
    expect(started.map((i) => i.id)).toEqual([1, 2]);
  });

  it('done() for a lane with nothing running is a no-op', () => {
    const { lanes, started } = recordingLanes();
    lanes.done({ id: 9, laneKey: 'nobody' });
    expect(started).toEqual([]);
    expect(lanes.activeLanes).toBe(0);
  });

  it('property: one at a time per lane, in push order; every item starts exactly once', () => {
    type Command = { kind: 'push'; lane: number | undefined } | { kind: 'done'; pick: number };
    const command: fc.Arbitrary<Command> = fc.oneof(
      fc.record({
        kind: fc.constant('push' as const),
        lane: fc.option(fc.nat(4), { nil: undefined, freq: 6 }),
      }),
      fc.record({ kind: fc.constant('done' as const), pick: fc.nat() }),
    );

    fc.assert(
      fc.property(fc.array(command, { maxLength: 200 }), (commands) => {
        const pushedPerLane = new Map<string, number[]>();
        const startedPerLane = new Map<string, number[]>();
        /** Items started and not done yet. */
        const running: Item[] = [];
        const startCount = new Map<number, number>();
        const lanes = new Lanes<Item>((item) => {
          startCount.set(item.id, (startCount.get(item.id) ?? 0) + 1);
          if (item.laneKey !== undefined) {
            // Never two of a lane at once.
            expect(running.some((r) => r.laneKey === item.laneKey)).toBe(false);
            const list = startedPerLane.get(item.laneKey) ?? [];
            list.push(item.id);
            startedPerLane.set(item.laneKey, list);
            // In push order: the n-th start of a lane is its n-th push.
            expect(item.id).toBe(pushedPerLane.get(item.laneKey)![list.length - 1]);
          }
          running.push(item);
        });

        let nextId = 0;
        const pushed: Item[] = [];
        const step = (cmd: Command): void => {
          if (cmd.kind === 'push') {
            const item: Item = {
              id: nextId,
              laneKey: cmd.lane === undefined ? undefined : `lane-${cmd.lane}`,
            };
            nextId += 1;
            pushed.push(item);
            if (item.laneKey !== undefined) {
              const list = pushedPerLane.get(item.laneKey) ?? [];
              list.push(item.id);
              pushedPerLane.set(item.laneKey, list);
            }
            lanes.push(item);
            // An item with no lane, or the first of an idle lane, starts at once.
            if (item.laneKey === undefined) expect(startCount.get(item.id)).toBe(1);
          } else if (running.length > 0) {
            const [item] = running.splice(cmd.pick % running.length, 1);
            lanes.done(item!);
          }
          const busyLanes = new Set(
            running.flatMap((r) => (r.laneKey === undefined ? [] : [r.laneKey])),
          );
          expect(lanes.activeLanes).toBe(busyLanes.size);
          // A lane with waiting items always has one running: no lane stalls.
          for (const [lane, ids] of pushedPerLane) {
            const startedCount = startedPerLane.get(lane)?.length ?? 0;
            if (ids.length > startedCount) expect(busyLanes.has(lane)).toBe(true);
          }
        };

        for (const cmd of commands) step(cmd);
        // Drain: everything pushed eventually starts, exactly once.
        while (running.length > 0) step({ kind: 'done', pick: 0 });
        expect(lanes.activeLanes).toBe(0);
        for (const item of pushed) expect(startCount.get(item.id)).toBe(1);
      }),
      { numRuns: 300 },
    );
  });
});
