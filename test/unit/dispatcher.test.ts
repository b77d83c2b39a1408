import pLimit from 'p-limit';
import { describe, expect, it } from 'vitest';
import { Partitions, type PartitionState } from '../../src/consumer/admission/partitions.js';
import { Delivery } from '../../src/consumer/dispatch/delivery.js';
import { Dispatcher, type Step } from '../../src/consumer/dispatch/dispatcher.js';
import type { OrderingMode } from '../../src/consumer/options.js';

/** Lets p-limit start workers and parked work come back: every pending microtask and immediate runs. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

type Behaviour = 'hold' | 'sync' | 'async' | 'park';

interface Harness {
  readonly dispatcher: Dispatcher;
  readonly partitions: Partitions;
  readonly states: PartitionState[];
  /** Every step started, in order (a requeued message appears again). */
  readonly started: Delivery[];
  /** Steps running now, with their `free`. */
  readonly held: Map<Delivery, (done: boolean) => void>;
  readonly done: Delivery[];
  /** Most steps running at once. */
  maxActive: number;
  /** Admits `count` messages of a partition, as the admitter does. */
  push(state: PartitionState, count: number, key?: (i: number) => string): Delivery[];
  /** Ends a held step: done (settled) or parked. */
  finish(delivery: Delivery, done?: boolean): void;
}

/**
 * A real Dispatcher with p-limit and Partitions, and a fake step whose
 * behaviour the test picks per message: held until the test ends it, done
 * at once (synchronously), done on the next turn of the event loop, or
 * parked once (free(false)) and held when it comes back.
 */
function harness(
  concurrency: number,
  mode: OrderingMode,
  partitionCount: number,
  behaviour: (d: Delivery) => Behaviour = () => 'hold',
  onStart?: (d: Delivery, h: Harness) => void,
): Harness {
  const partitions = new Partitions(mode);
  const states = Array.from({ length: partitionCount }, (_, p) => partitions.of('t', p));
  const offsets = new Map<PartitionState, number>();
  const parkedOnce = new Set<Delivery>();
  let active = 0;

  const h: Harness = {
    dispatcher: undefined as unknown as Dispatcher,
    partitions,
    states,
    started: [],
    held: new Map(),
    done: [],
    maxActive: 0,
    push(state, count, key = (i) => `k${i}`) {
      const pushed: Delivery[] = [];
      for (let i = 0; i < count; i += 1) {
        const offset = offsets.get(state) ?? 0;
        offsets.set(state, offset + 1);
        const raw = {
          offset: String(offset),
          key: null,
          value: Buffer.from('v'),
          headers: {},
          timestamp: '0',
        };
        const delivery = new Delivery(state, raw, offset, 1, key(offset));
        partitions.admitted(state, delivery.bytes);
        pushed.push(delivery);
        h.dispatcher.push(delivery);
      }
      return pushed;
    },
    finish(delivery, done = true) {
      const free = h.held.get(delivery);
      if (free === undefined) throw new Error(`not running: ${delivery.offset}`);
      h.held.delete(delivery);
      active -= 1;
      if (done) {
        h.done.push(delivery);
        partitions.settled(delivery.state, delivery.bytes);
      }
      free(done);
    },
  };

  const step: Step = (unit, free) => {
    // No batch handler here: every unit is a message.
    const delivery = unit as Delivery;
    active += 1;
    h.maxActive = Math.max(h.maxActive, active);
    h.started.push(delivery);
    h.held.set(delivery, free);
    onStart?.(delivery, h);
    let b = behaviour(delivery);
    if (b === 'park') {
      if (parkedOnce.has(delivery)) b = 'hold';
      else parkedOnce.add(delivery);
    }
    if (b === 'sync') h.finish(delivery);
    else if (b === 'async') setImmediate(() => h.finish(delivery));
    else if (b === 'park') h.finish(delivery, false);
  };
  (h as { dispatcher: Dispatcher }).dispatcher = new Dispatcher(
    pLimit(concurrency),
    partitions,
    step,
  );
  return h;
}

/** Flushes until `done` is true (or gives up after `rounds`). */
async function until(done: () => boolean, rounds = 10_000): Promise<void> {
  for (let i = 0; i < rounds && !done(); i += 1) await flush();
}

const heldOf = (h: Harness, state: PartitionState): Delivery[] =>
  [...h.held.keys()].filter((d) => d.state === state);

describe('Dispatcher', () => {
  it('runs up to `concurrency` steps at once, never more', async () => {
    const h = harness(5, 'unordered', 3);
    for (const state of h.states) h.push(state, 30);
    await flush();
    expect(h.held.size).toBe(5);
    expect(h.dispatcher.active).toBe(5);
    expect(h.dispatcher.demand).toBe(90);
    // End running steps in a scrambled order until all 90 are done.
    let seed = 7;
    while (h.done.length < 90) {
      const running = [...h.held.keys()];
      expect(running.length).toBeGreaterThan(0);
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      h.finish(running[seed % running.length]!);
      await flush();
      expect(h.dispatcher.active).toBeLessThanOrEqual(5);
    }
    expect(h.maxActive).toBe(5);
    expect(new Set(h.done).size).toBe(90);
    expect(h.dispatcher.active).toBe(0);
    expect(h.dispatcher.demand).toBe(0);
  });

  describe.each<OrderingMode>(['key', 'unordered'])('fair share (%s ordering)', (mode) => {
    it('a slow partition never runs more than ceil(concurrency / busy partitions) while others have work', async () => {
      const concurrency = 4;
      const violations: string[] = [];
      // At every start: while another partition has runnable work, this one stays within its share.
      const check = (d: Delivery, h: Harness): void => {
        const othersWait = h.states.some((s) => s !== d.state && s.lanes.hasReady);
        const share = Math.ceil(concurrency / Math.max(1, h.partitions.busy));
        if (othersWait && d.state.running > share) {
          violations.push(`p${d.state.partition}: ${d.state.running} > ${share}`);
        }
      };
      // Partition 0 is the slow one: its steps never end.
      const slow = (d: Delivery): Behaviour => (d.state.partition === 0 ? 'hold' : 'async');
      const h = harness(concurrency, mode, 3, slow, check);
      const [a, b, c] = h.states as [PartitionState, PartitionState, PartitionState];
      // The slow partition's work arrives first, and distinct keys make all of it runnable.
      h.push(a, 20);
      h.push(b, 50);
      h.push(c, 50);
      await until(() => h.done.length === 100);
      expect(violations).toEqual([]);
      // The slow partition held its share (2 of 4) and no more, even once the others ran
      // dry: they stay assigned, so a slot stays free for each. The others got through.
      expect(heldOf(h, a)).toHaveLength(2);
      expect(h.done.filter((d) => d.state === b)).toHaveLength(50);
      expect(h.done.filter((d) => d.state === c)).toHaveLength(50);
    });
  });

  it('a partition alone with work may pass its share only while a slot stays free for each idle assigned partition', async () => {
    for (const [assigned, expected] of [
      [1, 4],
      [2, 3],
      [3, 2],
      [5, 1],
    ] as const) {
      const h = harness(4, 'unordered', assigned);
      h.push(h.states[0]!, 20);
      await flush();
      expect(heldOf(h, h.states[0]!), `${assigned} assigned`).toHaveLength(expected);
      // An idle partition's first message finds a slot at once.
      if (assigned > 1) {
        h.push(h.states[1]!, 5);
        await flush();
        expect(heldOf(h, h.states[1]!).length).toBeGreaterThanOrEqual(1);
        expect(h.held.size).toBeLessThanOrEqual(4);
      }
    }
  });

  it('partitions with runnable messages take turns', async () => {
    const h = harness(1, 'unordered', 3, () => 'sync');
    for (const state of h.states) h.push(state, 3);
    await until(() => h.done.length === 9);
    expect(h.started.map((d) => `${d.state.partition}:${d.offset}`)).toEqual([
      '0:0',
      '1:0',
      '2:0',
      '0:1',
      '1:1',
      '2:1',
      '0:2',
      '1:2',
      '2:2',
    ]);
  });

  it('a partition whose work arrives later gets its turn before the first one finishes its backlog', async () => {
    const h = harness(1, 'unordered', 2);
    const [a, b] = h.states as [PartitionState, PartitionState];
    h.push(a, 10);
    await flush();
    h.push(b, 1);
    h.finish([...h.held.keys()][0]!);
    await flush();
    expect([...h.held.keys()].map((d) => d.state)).toEqual([b]);
  });

  it('lowering the limit lets workers leave after their step; raising it starts more', async () => {
    // Three partitions, so their shares (2 each at 4) allow more than the limit in all.
    const h = harness(6, 'unordered', 3);
    for (const state of h.states) h.push(state, 10);
    await flush();
    expect(h.held.size).toBe(6);

    h.dispatcher.concurrency = 4;
    expect(h.dispatcher.concurrency).toBe(4);
    // Running steps are not cut short.
    expect(h.held.size).toBe(6);
    const [a0, b0, c0] = h.states.map((s) => heldOf(h, s)[0]!) as [Delivery, Delivery, Delivery];
    h.finish(a0);
    h.finish(b0);
    await flush();
    // Those two workers left instead of taking more.
    expect(h.held.size).toBe(4);
    expect(h.started).toHaveLength(6);
    h.finish(c0);
    await flush();
    // At the new limit, a worker that ends a step takes the next.
    expect(h.held.size).toBe(4);
    expect(h.started).toHaveLength(7);

    h.dispatcher.concurrency = 9;
    await flush();
    expect(h.held.size).toBe(9);
    expect(h.dispatcher.active).toBe(9);
    expect(h.started).toHaveLength(12);
  });

  it('a parked message frees its worker and comes back through requeue', async () => {
    // Concurrency 1: another message runs while the first is parked.
    const h = harness(1, 'unordered', 1, (d) => (d.offset === 0 ? 'park' : 'hold'));
    const [state] = h.states as [PartitionState];
    const [m0, m1, m2] = h.push(state, 3) as [Delivery, Delivery, Delivery];
    await flush();
    expect(h.started).toEqual([m0, m1]);
    expect(h.dispatcher.active).toBe(1);
    h.dispatcher.requeue(m0);
    h.finish(m1);
    await flush();
    // Requeued behind m2, which was runnable first.
    expect(h.started).toEqual([m0, m1, m2]);
    h.finish(m2);
    await flush();
    expect(h.started).toEqual([m0, m1, m2, m0]);
    h.finish(m0);
    await flush();
    expect(h.done).toEqual([m1, m2, m0]);
  });

  it('partition ordering: a parked message holds its lane until requeued and done', async () => {
    const h = harness(4, 'partition', 1, (d) => (d.offset === 0 ? 'park' : 'hold'));
    const [state] = h.states as [PartitionState];
    const [m0, m1] = h.push(state, 2) as [Delivery, Delivery];
    await flush();
    expect(h.started).toEqual([m0]);
    expect(h.dispatcher.active).toBe(0);
    h.dispatcher.requeue(m0);
    await flush();
    expect(h.started).toEqual([m0, m0]);
    h.finish(m0);
    await flush();
    expect(h.started).toEqual([m0, m0, m1]);
  });

  it('partition ordering: a parked message that ends outside a worker (finished) lets its lane move on', async () => {
    const h = harness(4, 'partition', 1, (d) => (d.offset === 0 ? 'park' : 'hold'));
    const [state] = h.states as [PartitionState];
    const [m0, m1] = h.push(state, 2) as [Delivery, Delivery];
    await flush();
    expect(h.started).toEqual([m0]);
    h.partitions.settled(state, m0.bytes);
    h.dispatcher.finished(m0);
    await flush();
    expect(h.started).toEqual([m0, m1]);
  });

  it('runs 10,000 synchronous steps without growing the stack', async () => {
    for (const mode of ['unordered', 'partition'] as const) {
      const h = harness(4, mode, 1, () => 'sync');
      const [state] = h.states as [PartitionState];
      h.push(state, 10_000);
      await until(() => h.done.length === 10_000, 1000);
      expect(h.done).toHaveLength(10_000);
      expect(h.dispatcher.active).toBe(0);
    }
  });

  it('starts work pushed after the workers went idle', async () => {
    const h = harness(2, 'unordered', 1, () => 'async');
    const [state] = h.states as [PartitionState];
    h.push(state, 3);
    await until(() => h.done.length === 3);
    h.push(state, 3);
    await until(() => h.done.length === 6);
    expect(h.done).toHaveLength(6);
  });
});
