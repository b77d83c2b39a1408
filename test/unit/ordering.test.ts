import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Fifo, LaneQueue, laneKeyOf, type LaneItem } from '../../src/consumer/dispatch/lanes.js';
import type { OrderingMode } from '../../src/consumer/options.js';

interface Item extends LaneItem {
  readonly id: number;
}

const item = (id: number, laneKey = 'a'): Item => ({ id, laneKey });

/** Takes every message allowed to run now. */
function takeAll<T extends LaneItem>(lanes: LaneQueue<T>): T[] {
  const taken: T[] = [];
  for (let next = lanes.take(); next !== undefined; next = lanes.take()) taken.push(next);
  return taken;
}

const ids = (items: readonly Item[]): number[] => items.map((i) => i.id);

describe('laneKeyOf', () => {
  const key = (s: string): Buffer => Buffer.from(s);

  it('gives equal keys the same lane and different keys different lanes', () => {
    expect(laneKeyOf(key('a'))).toBe(laneKeyOf(key('a')));
    expect(laneKeyOf(key('a'))).not.toBe(laneKeyOf(key('b')));
  });

  it('gives the null key (and undefined) a lane of its own, distinct from every real key', () => {
    const nullLane = laneKeyOf(null);
    expect(laneKeyOf(undefined)).toBe(nullLane);
    for (const k of ['', '∅', 'null', 'undefined', '\u2205']) {
      expect(laneKeyOf(key(k))).not.toBe(nullLane);
    }
    expect(laneKeyOf(Buffer.alloc(0))).not.toBe(nullLane);
    // The marker's own code point, written as UTF-16 bytes, is still a key.
    expect(laneKeyOf(Buffer.from([0x05, 0x22]))).not.toBe(nullLane);
    expect(laneKeyOf(Buffer.from([0x22, 0x05]))).not.toBe(nullLane);
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
    const lanes = new Set(keys.map((k) => laneKeyOf(k)));
    expect(lanes.size).toBe(keys.length);
  });

  it('property: distinct byte strings give distinct lanes, equal ones the same lane, none the null lane', () => {
    const nullLane = laneKeyOf(null);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 16 }), fc.uint8Array({ maxLength: 16 }), (a, b) => {
        const same = Buffer.from(a).equals(Buffer.from(b));
        const laneA = laneKeyOf(Buffer.from(a));
        expect(laneA === laneKeyOf(Buffer.from(b))).toBe(same);
        expect(laneA).not.toBe(nullLane);
      }),
    );
  });
});

describe('Fifo', () => {
  it('gives items back in push order, undefined when empty', () => {
    const q = new Fifo<number>();
    expect(q.shift()).toBeUndefined();
    for (const n of [1, 2, 3]) q.push(n);
    expect(q.size).toBe(3);
    expect([q.shift(), q.shift(), q.shift(), q.shift()]).toEqual([1, 2, 3, undefined]);
    expect(q.size).toBe(0);
  });

  it('unshift puts an item in front, whether or not items were taken before', () => {
    const q = new Fifo<number>();
    q.push(1);
    q.push(2);
    q.unshift(0);
    expect(q.shift()).toBe(0);
    // The head has moved: the next unshift reuses the freed slot.
    q.unshift(9);
    expect(q.drain()).toEqual([9, 1, 2]);
    expect(q.size).toBe(0);
  });

  it('keeps order across its compaction of a long queue', () => {
    const q = new Fifo<number>();
    for (let n = 0; n < 2000; n += 1) q.push(n);
    const out: number[] = [];
    // Past 1024 taken, with at most twice that held, it compacts: items stay on both sides of the head.
    for (let i = 0; i < 1500; i += 1) out.push(q.shift()!);
    for (let n = 2000; n < 2100; n += 1) q.push(n);
    q.unshift(out.pop()!);
    out.push(...q.drain());
    expect(out).toEqual(Array.from({ length: 2100 }, (_, i) => i));
  });

  it('property: behaves as an array queue', () => {
    type Op = { op: 'push'; n: number } | { op: 'shift' } | { op: 'unshift'; n: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constant('push' as const), n: fc.integer() }),
      fc.record({ op: fc.constant('shift' as const) }),
      fc.record({ op: fc.constant('unshift' as const), n: fc.integer() }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 3000 }), (ops) => {
        const q = new Fifo<number>();
        const model: number[] = [];
        for (const o of ops) {
          if (o.op === 'push') {
            q.push(o.n);
            model.push(o.n);
          } else if (o.op === 'unshift') {
            q.unshift(o.n);
            model.unshift(o.n);
          } else {
            expect(q.shift()).toBe(model.shift());
          }
          expect(q.size).toBe(model.length);
        }
        expect(q.drain()).toEqual(model);
      }),
      { numRuns: 50 },
    );
  });
});

describe("LaneQueue, 'partition' ordering", () => {
  it('lets one message run at a time, in push order', () => {
    const lanes = new LaneQueue<Item>('partition');
    const items = [1, 2, 3].map((id) => item(id, `key-${id}`));
    for (const i of items) lanes.push(i);
    expect(lanes.size).toBe(3);
    expect(lanes.readyCount).toBe(1);
    expect(ids(takeAll(lanes))).toEqual([1]);
    // Out until done: nothing else may run, whatever its key.
    expect(lanes.hasReady).toBe(false);
    expect(lanes.size).toBe(2);
    lanes.done(items[0]!);
    expect(ids(takeAll(lanes))).toEqual([2]);
    lanes.done(items[1]!);
    expect(ids(takeAll(lanes))).toEqual([3]);
    lanes.done(items[2]!);
    expect(lanes.hasReady).toBe(false);
    expect(lanes.size).toBe(0);
  });

  it('a message pushed while one is out waits for done', () => {
    const lanes = new LaneQueue<Item>('partition');
    const first = item(1);
    lanes.push(first);
    expect(lanes.take()).toBe(first);
    lanes.push(item(2));
    expect(lanes.take()).toBeUndefined();
    lanes.done(first);
    expect(lanes.take()?.id).toBe(2);
  });

  it('requeue lets the message that is out run again, before the next', () => {
    const lanes = new LaneQueue<Item>('partition');
    const first = item(1);
    lanes.push(first);
    lanes.push(item(2));
    expect(lanes.take()).toBe(first);
    lanes.requeue(first);
    expect(lanes.size).toBe(2);
    expect(lanes.take()).toBe(first);
    expect(lanes.take()).toBeUndefined();
    lanes.done(first);
    expect(lanes.take()?.id).toBe(2);
  });
});

describe("LaneQueue, 'key' ordering", () => {
  it('lets one message per key run at a time, keys side by side', () => {
    const lanes = new LaneQueue<Item>('key');
    const a1 = item(1, 'a');
    const b1 = item(2, 'b');
    const a2 = item(3, 'a');
    const c1 = item(4, 'c');
    const a3 = item(5, 'a');
    for (const i of [a1, b1, a2, c1, a3]) lanes.push(i);
    expect(lanes.readyCount).toBe(3);
    expect(ids(takeAll(lanes))).toEqual([1, 2, 4]);
    // b and c finishing frees nothing of a.
    lanes.done(b1);
    lanes.done(c1);
    expect(takeAll(lanes)).toEqual([]);
    lanes.done(a1);
    expect(ids(takeAll(lanes))).toEqual([3]);
    lanes.done(a2);
    expect(ids(takeAll(lanes))).toEqual([5]);
  });

  it("a key's next message goes behind the keys already ready: keys take turns", () => {
    const lanes = new LaneQueue<Item>('key');
    const a1 = item(1, 'a');
    for (const i of [a1, item(2, 'a'), item(3, 'a'), item(4, 'b'), item(5, 'c')]) lanes.push(i);
    expect(lanes.take()).toBe(a1);
    lanes.done(a1);
    expect(ids(takeAll(lanes))).toEqual([4, 5, 2]);
  });

  it('a slow key does not hold another key back', () => {
    const lanes = new LaneQueue<Item>('key');
    const slow = item(1, 'slow');
    lanes.push(slow);
    lanes.push(item(2, 'slow'));
    expect(lanes.take()).toBe(slow);
    const fastIds: number[] = [];
    for (let id = 10; id < 15; id += 1) {
      lanes.push(item(id, 'fast'));
      const next = lanes.take()!;
      fastIds.push(next.id);
      lanes.done(next);
    }
    expect(fastIds).toEqual([10, 11, 12, 13, 14]);
    expect(lanes.take()).toBeUndefined();
    lanes.done(slow);
    expect(lanes.take()?.id).toBe(2);
  });

  it('the null key is a lane of its own, apart from every real key, binary ones included', () => {
    const lanes = new LaneQueue<Item>('key');
    const keys: (Buffer | null)[] = [
      null,
      Buffer.from('∅'),
      Buffer.alloc(0),
      Buffer.from([0xff]),
      Buffer.from([0xc3, 0xbf]),
    ];
    keys.forEach((k, id) => lanes.push(item(id, laneKeyOf(k))));
    // A second message of the null key waits behind the first.
    lanes.push(item(99, laneKeyOf(null)));
    expect(ids(takeAll(lanes))).toEqual([0, 1, 2, 3, 4]);
  });

  it('a lane that emptied lets its next message run at once', () => {
    const lanes = new LaneQueue<Item>('key');
    const first = item(1);
    lanes.push(first);
    lanes.done(lanes.take()!);
    lanes.push(item(2));
    expect(lanes.take()?.id).toBe(2);
  });

  it('requeue makes the message runnable again behind those already ready; its key stays held', () => {
    const lanes = new LaneQueue<Item>('key');
    const a1 = item(1, 'a');
    lanes.push(a1);
    lanes.push(item(2, 'a'));
    lanes.push(item(3, 'b'));
    expect(lanes.take()).toBe(a1);
    lanes.requeue(a1);
    expect(lanes.size).toBe(3);
    expect(ids(takeAll(lanes))).toEqual([3, 1]);
    lanes.done(a1);
    expect(ids(takeAll(lanes))).toEqual([2]);
  });

  it('messages requeued together run in the order they were requeued', () => {
    const lanes = new LaneQueue<Item>('key');
    const [a, b, c] = [item(1, 'a'), item(2, 'b'), item(3, 'c')];
    for (const i of [a, b, c]) lanes.push(i);
    takeAll(lanes);
    lanes.requeue(c);
    lanes.requeue(a);
    lanes.requeue(b);
    expect(ids(takeAll(lanes))).toEqual([3, 1, 2]);
  });

  it('done() of a key with no lane is a no-op', () => {
    const lanes = new LaneQueue<Item>('key');
    lanes.push(item(1, 'a'));
    lanes.done(item(9, 'nobody'));
    expect(lanes.readyCount).toBe(1);
    expect(lanes.size).toBe(1);
  });
});

describe("LaneQueue, 'unordered'", () => {
  it('lets every message run at once, in push order, whatever its key', () => {
    const lanes = new LaneQueue<Item>('unordered');
    const items = [item(1, 'a'), item(2, 'a'), item(3, 'b'), item(4, 'a')];
    for (const i of items) lanes.push(i);
    expect(lanes.readyCount).toBe(4);
    expect(ids(takeAll(lanes))).toEqual([1, 2, 3, 4]);
    expect(lanes.size).toBe(0);
    lanes.done(items[0]!);
    expect(lanes.hasReady).toBe(false);
  });

  it('requeue makes the message runnable again, behind those already ready', () => {
    const lanes = new LaneQueue<Item>('unordered');
    const first = item(1);
    lanes.push(first);
    lanes.push(item(2));
    expect(lanes.take()).toBe(first);
    lanes.requeue(first);
    expect(lanes.readyCount).toBe(2);
    expect(ids(takeAll(lanes))).toEqual([2, 1]);
  });
});

describe('LaneQueue property', () => {
  type Command =
    | { kind: 'push'; lane: number }
    | { kind: 'take' }
    | { kind: 'done'; pick: number }
    | { kind: 'requeue'; pick: number };

  const command: fc.Arbitrary<Command> = fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('push' as const), lane: fc.nat(4) }), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('take' as const) }), weight: 3 },
    { arbitrary: fc.record({ kind: fc.constant('done' as const), pick: fc.nat() }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('requeue' as const), pick: fc.nat() }), weight: 1 },
  );

  it.each<OrderingMode>(['partition', 'key', 'unordered'])(
    '%s: per lane one out at a time, in push order; every message taken, and done, exactly once',
    (mode) => {
      // The lane a message's order is kept in: the whole partition, its key, or none.
      const laneOf = (i: Item): string | undefined =>
        mode === 'partition' ? 'p' : mode === 'key' ? i.laneKey : undefined;

      fc.assert(
        fc.property(fc.array(command, { maxLength: 200 }), (commands) => {
          const lanes = new LaneQueue<Item>(mode);
          const pushedPerLane = new Map<string, number[]>();
          const firstTakesPerLane = new Map<string, number[]>();
          /** Taken and not done (requeued ones included: their lane has not moved on). */
          const out: Item[] = [];
          const requeued = new Set<number>();
          const firstTakes = new Map<number, number>();
          const dones = new Map<number, number>();
          let nextId = 0;
          let held = 0;

          const take = (): Item | undefined => {
            const next = lanes.take();
            if (next === undefined) return undefined;
            held -= 1;
            if (requeued.delete(next.id)) {
              // A requeued message comes back as it is: still out, already counted.
              expect(out).toContain(next);
              return next;
            }
            firstTakes.set(next.id, (firstTakes.get(next.id) ?? 0) + 1);
            const lane = laneOf(next);
            if (lane !== undefined) {
              expect(out.some((o) => laneOf(o) === lane)).toBe(false);
              const taken = firstTakesPerLane.get(lane) ?? [];
              taken.push(next.id);
              firstTakesPerLane.set(lane, taken);
              expect(next.id).toBe(pushedPerLane.get(lane)![taken.length - 1]);
            }
            out.push(next);
            return next;
          };
          const finish = (pick: number): void => {
            const running = out.filter((o) => !requeued.has(o.id));
            if (running.length === 0) return;
            const done = running[pick % running.length]!;
            out.splice(out.indexOf(done), 1);
            dones.set(done.id, (dones.get(done.id) ?? 0) + 1);
            lanes.done(done);
          };

          for (const cmd of commands) {
            if (cmd.kind === 'push') {
              const pushed = item(nextId, `k${cmd.lane}`);
              nextId += 1;
              held += 1;
              const lane = laneOf(pushed);
              if (lane !== undefined) {
                const list = pushedPerLane.get(lane) ?? [];
                list.push(pushed.id);
                pushedPerLane.set(lane, list);
              }
              lanes.push(pushed);
              if (mode === 'unordered') expect(lanes.readyCount).toBe(lanes.size);
            } else if (cmd.kind === 'take') {
              take();
            } else if (cmd.kind === 'done') {
              finish(cmd.pick);
            } else {
              const running = out.filter((o) => !requeued.has(o.id));
              if (running.length > 0) {
                const parked = running[cmd.pick % running.length]!;
                requeued.add(parked.id);
                held += 1;
                lanes.requeue(parked);
              }
            }
            expect(lanes.size).toBe(held);
          }

          // Drain: no lane stalls; everything pushed is taken and done once.
          for (let guard = 0; guard <= 2 * nextId + 1; guard += 1) {
            while (take() !== undefined);
            if (out.length === 0) break;
            finish(0);
          }
          expect(out).toEqual([]);
          expect(lanes.size).toBe(0);
          for (let id = 0; id < nextId; id += 1) {
            expect(firstTakes.get(id)).toBe(1);
            expect(dones.get(id)).toBe(1);
          }
        }),
        { numRuns: 300 },
      );
    },
  );
});
