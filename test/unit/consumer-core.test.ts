import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BackpressureConsumer } from '../../src/consumer/backpressure-consumer.js';
import type { BackpressureConsumerOptions, InboundMessage } from '../../src/consumer/options.js';
import type { LatencyEvent } from '../../src/consumer/events.js';
import type { ProducerRecord } from 'kafkajs';
import { ACTIVE_WINDOW_MS } from '../../src/consumer/admission/partitions.js';
import { FakeClient } from '../helpers/fake-client.js';
import { DLQ_HEADERS } from '../../src/consumer/failure/dead-letter-record.js';

/**
 * The consumer's core driven through the client port by a fake client and
 * fake timers: every interleaving below is decided by the test, and the
 * whole file runs in milliseconds. The real-broker tests remain the proof
 * of the guarantees; these pin down the core's decisions.
 */

const clock = { now: () => Date.now() };

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

const tick = (ms = 0) => vi.advanceTimersByTimeAsync(ms);

/** Handler calls the test settles by hand, by `partition:offset`. */
class Gates {
  readonly open = new Map<string, { resolve: () => void; reject: (e: unknown) => void }>();
  readonly calls: string[] = [];

  handler = (message: InboundMessage<unknown>): Promise<void> => {
    const id = `${message.partition}:${message.offset}`;
    this.calls.push(id);
    return new Promise((resolve, reject) => this.open.set(id, { resolve, reject }));
  };

  release(id: string): void {
    const gate = this.open.get(id);
    if (gate === undefined) throw new Error(`no open call ${id}`);
    this.open.delete(id);
    gate.resolve();
  }

  releaseAll(partition?: number): void {
    for (const id of [...this.open.keys()]) {
      if (partition === undefined || id.startsWith(`${partition}:`)) this.release(id);
    }
  }

  running(partition: number): number {
    return [...this.open.keys()].filter((id) => id.startsWith(`${partition}:`)).length;
  }
}

async function started(
  options: Partial<BackpressureConsumerOptions<Buffer | null>> &
    Pick<BackpressureConsumerOptions<Buffer | null>, 'handler'>,
  partitions = 1,
) {
  const client = new FakeClient();
  const consumer = new BackpressureConsumer(client, {
    topics: ['t'],
    clock,
    circuitBreaker: false,
    commitIntervalMs: 60_000,
    ...options,
  });
  await consumer.start();
  client.assign(
    'g',
    Array.from({ length: partitions }, (_, partition) => ({ topic: 't', partition })),
  );
  return { client, consumer };
}

function keyed(n: number, prefix = 'k'): { key: string }[] {
  return Array.from({ length: n }, (_, i) => ({ key: `${prefix}${i}` }));
}

describe('consumer core with a fake client: offsets', () => {
  it('commits only the contiguous done prefix when messages finish out of order', async () => {
    const gates = new Gates();
    const { client, consumer } = await started({
      ordering: 'unordered',
      concurrency: 10,
      handler: gates.handler,
    });
    await client.deliver('t', 0, 10);
    await tick();
    expect(gates.open.size).toBe(10);
    for (let o = 5; o < 10; o += 1) gates.release(`0:${o}`);
    await tick();
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(0);
    for (let o = 0; o < 5; o += 1) gates.release(`0:${o}`);
    await tick();
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(10);
    // Every offset was resolved to the client at admission, before any finished.
    expect(client.resolved.get('t|0')).toBe(9);
    await consumer.close();
  });

  it('keeps a position unconfirmed when the client skips the commit, and sends it again', async () => {
    const { client, consumer } = await started({ handler: () => undefined });
    client.confirmCommits = false;
    await client.deliver('t', 0, 3);
    await tick();
    await consumer.commit();
    expect(consumer.partitions()[0]!.committedOffset).toBeUndefined();
    client.confirmCommits = true;
    await consumer.commit();
    expect(consumer.partitions()[0]!.committedOffset).toBe(3);
    // The prompt commit after the first completion, then the two above.
    expect(client.commits.length).toBe(3);
    await consumer.close();
  });
});

describe.each(['partition', 'key', 'unordered'] as const)(
  'consumer core with a fake client: fairness in %s ordering',
  (ordering) => {
    it('a slow partition never takes more than its share of the concurrency while another has work', async () => {
      const gates = new Gates();
      let fastDone = 0;
      let slowWhileFast = 0;
      const { client, consumer } = await started(
        {
          ordering,
          concurrency: 4,
          handler: (message) => {
            if (message.partition === 0) return gates.handler(message);
            fastDone += 1;
            slowWhileFast = Math.max(slowWhileFast, gates.running(0));
            return Promise.resolve();
          },
        },
        2,
      );
      await client.deliver('t', 0, keyed(40));
      await client.deliver('t', 1, keyed(40));
      await tick();
      // Partition 1 finished everything while partition 0's handlers hang,
      // and partition 0 never ran more than its share meanwhile.
      expect(fastDone).toBe(40);
      expect(slowWhileFast).toBeGreaterThan(0);
      expect(slowWhileFast).toBeLessThanOrEqual(ordering === 'partition' ? 1 : 2);
      // Partition 1 ran dry just now: it still counts toward the share, so
      // partition 0 stays at its share.
      expect(gates.running(0)).toBe(ordering === 'partition' ? 1 : 2);
      // Once partition 1 has had nothing for the activity window, partition
      // 0 may use more than its share as its handlers end, but one slot
      // stays free for the other assigned partition.
      await tick(ACTIVE_WINDOW_MS);
      gates.release([...gates.open.keys()][0]!);
      await tick();
      expect(gates.running(0)).toBe(ordering === 'partition' ? 1 : 3);
      while (gates.open.size > 0) {
        gates.releaseAll();
        await tick();
      }
      await consumer.commit();
      expect(client.committed.get('t|0')).toBe(40);
      expect(client.committed.get('t|1')).toBe(40);
      await consumer.close();
    });

    it('a slow partition whose batch comes first after the assignment takes only its share, leaving the rest for partitions about to get work', async () => {
      const gates = new Gates();
      const { client, consumer } = await started(
        { ordering, concurrency: 6, handler: gates.handler },
        3,
      );
      await client.deliver('t', 0, keyed(40));
      await tick();
      expect(gates.running(0)).toBe(ordering === 'partition' ? 1 : 2);
      // The others' batches find their slots free.
      await client.deliver('t', 1, keyed(10));
      await client.deliver('t', 2, keyed(10));
      await tick();
      expect(gates.running(1)).toBe(ordering === 'partition' ? 1 : 2);
      expect(gates.running(2)).toBe(ordering === 'partition' ? 1 : 2);
      while (gates.open.size > 0) {
        gates.releaseAll();
        await tick();
      }
      await consumer.close();
    });

    it('a slow partition holds at most its share of a contended in-flight budget, and pauses rather than starve others', async () => {
      const gates = new Gates();
      let fastDone = 0;
      const { client, consumer } = await started(
        {
          ordering,
          concurrency: 4,
          maxInFlight: 20,
          handler: (message) => {
            if (message.partition === 0) return gates.handler(message);
            fastDone += 1;
            return Promise.resolve();
          },
        },
        2,
      );
      const slow = client.deliver('t', 0, keyed(60));
      await tick(1000);
      await slow;
      // Its share is 10 of 20 (plus the one admitted at the low mark); it
      // waited briefly in place, then paused.
      expect(consumer.inFlight).toBeLessThanOrEqual(11);
      expect(consumer.partitions().find((p) => p.partition === 0)!.reasons).toContain(
        'partition-full',
      );
      expect(client.paused.has('t|0')).toBe(true);
      const fast = client.deliver('t', 1, keyed(60));
      await tick(1000);
      await fast;
      expect(fastDone).toBe(60);
      // The pause ends once a chunk of the partition's own work is done.
      while (gates.open.size > 0) {
        gates.releaseAll();
        await tick();
      }
      expect(consumer.inFlight).toBe(0);
      expect(client.paused.has('t|0')).toBe(false);
      await consumer.close({ drainTimeoutMs: 0 });
    });
  },
);

describe('consumer core with a fake client: time lag', () => {
  it('reports the age of the oldest message not done, 0 once caught up, and the same in lag samples', async () => {
    const gates = new Gates();
    const { client, consumer } = await started({
      ordering: 'unordered',
      concurrency: 10,
      lagSampleIntervalMs: 1000,
      handler: gates.handler,
    });
    const samples: (number | undefined)[] = [];
    consumer.on('lag.sample', (e) => samples.push(e.partitions[0]?.timeLagSeconds));
    const t0 = Date.now();
    await client.deliver('t', 0, [{ timestamp: t0 - 5000 }, { timestamp: t0 - 2000 }]);
    await tick(1000);
    // The oldest pending message was written 5 s before t0; a second has passed.
    expect(consumer.partitions()[0]!.timeLagMs).toBe(6000);
    expect(samples.at(-1)).toBe(6);
    // Done out of order: the oldest still holds the commit position, so the lag stays.
    gates.release('0:1');
    await tick();
    expect(consumer.partitions()[0]!.timeLagMs).toBe(6000);
    gates.release('0:0');
    await tick();
    expect(consumer.partitions()[0]!.timeLagMs).toBe(0);
    await consumer.close();
  });
});

describe('consumer core with a fake client: the in-flight bound', () => {
  it('holds maxInFlight while batches of several partitions wait for room side by side', async () => {
    const gates = new Gates();
    const { client, consumer } = await started(
      { ordering: 'unordered', concurrency: 20, maxInFlight: 10, handler: gates.handler },
      3,
    );
    const batches = [0, 1, 2].map((p) => client.deliver('t', p, 40));
    for (let round = 0; round < 200 && gates.open.size > 0; round += 1) {
      // Free room one message at a time: every waiting batch wakes on it.
      gates.release([...gates.open.keys()][0]!);
      await tick(10);
    }
    await tick(1000);
    while (gates.open.size > 0) {
      gates.releaseAll();
      await tick(100);
    }
    await Promise.all(batches);
    expect(consumer.peakInFlight).toBeLessThanOrEqual(10);
    await consumer.close();
  });
});

describe('consumer core with a fake client: ordering', () => {
  it('runs one message per key at a time in key ordering, keys side by side', async () => {
    const gates = new Gates();
    const { client, consumer } = await started({
      ordering: 'key',
      concurrency: 10,
      handler: gates.handler,
    });
    await client.deliver('t', 0, [{ key: 'a' }, { key: 'a' }, { key: 'b' }, { key: 'a' }]);
    await tick();
    expect([...gates.open.keys()].sort()).toEqual(['0:0', '0:2']);
    gates.release('0:0');
    await tick();
    expect([...gates.open.keys()].sort()).toEqual(['0:1', '0:2']);
    gates.releaseAll();
    await tick();
    gates.releaseAll();
    await tick();
    expect(gates.calls).toEqual(['0:0', '0:2', '0:1', '0:3']);
    await consumer.close();
  });
});

describe('consumer core with a fake client: failures', () => {
  function dlqProducer() {
    const sent: ProducerRecord[] = [];
    return {
      sent,
      producer: { send: (record: ProducerRecord) => (sent.push(record), Promise.resolve([])) },
    };
  }

  it('opens the circuit on an outage, makes no call while open, probes once, and dead-letters nothing', async () => {
    let down = true;
    let calls = 0;
    let callsWhileOpen = 0;
    let handled = 0;
    const dlq = dlqProducer();
    const { client, consumer } = await started({
      ordering: 'unordered',
      concurrency: 4,
      circuitBreaker: {
        volumeThreshold: 5,
        errorThresholdPercentage: 50,
        resetTimeoutMs: 1000,
        rollingCountTimeoutMs: 10_000,
      },
      retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 50 },
      deadLetter: { producer: dlq.producer },
      handler: () => {
        calls += 1;
        if (consumer.circuitState === 'open') callsWhileOpen += 1;
        if (down) return Promise.reject(new Error('downstream refused'));
        handled += 1;
        return Promise.resolve();
      },
    });
    const states: string[] = [];
    consumer.on('circuit.open', () => states.push('open'));
    consumer.on('circuit.half-open', () => states.push('half-open'));
    consumer.on('circuit.closed', () => states.push('closed'));
    await client.deliver('t', 0, 20);
    await tick(200);
    expect(consumer.circuitState).toBe('open');
    expect(client.paused.has('t|0')).toBe(true);
    const before = calls;
    await tick(500);
    expect(calls).toBe(before);
    down = false;
    await tick(1000);
    await tick(100);
    expect(states).toEqual(['open', 'half-open', 'closed']);
    expect(handled).toBe(20);
    expect(callsWhileOpen).toBe(0);
    expect(dlq.sent).toEqual([]);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(20);
    await consumer.close();
  });

  it('dead-letters a poison message alone on its partition: after its attempts and a short stall (the latest first attempts went well), and commits past it', async () => {
    const dlq = dlqProducer();
    const retries: number[] = [];
    const { client, consumer } = await started({
      ordering: 'partition',
      // Nothing else runs: only a guess ends it. The latest 50 first
      // attempts went well, so two more failing calls in a row (a short stall) are enough.
      circuitBreaker: { volumeThreshold: 10 },
      retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 50 },
      deadLetter: { producer: dlq.producer },
      handler: (message) =>
        message.offset === '60' ? Promise.reject(new Error('poison')) : Promise.resolve(),
    });
    const guesses: boolean[] = [];
    consumer.on('message.retry', (e) => retries.push(e.attempt));
    consumer.on('dlq.routed', (e) => guesses.push(e.guess === true));
    await client.deliver('t', 0, 70);
    // Three attempts 10 and 20 ms apart, two more at 20 to 40 ms.
    await tick(40);
    expect(dlq.sent).toEqual([]);
    await tick(200);
    expect(retries).toEqual([1, 2]);
    expect(guesses).toEqual([true]);
    expect(dlq.sent[0]!.topic).toBe('t.dlq');
    // The dead letter says so too, for whoever replays it.
    expect(dlq.sent[0]!.messages[0]!.headers![DLQ_HEADERS.guess]?.toString()).toBe('true');
    expect(consumer.circuitState).toBe('closed');
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(70);
    await consumer.close();
  });

  it('livelock setup: every partition head poison at once (partition order, 3 partitions): all dead-lettered, the rest handled, bounded calls', async () => {
    // Offset 25 of every partition always fails: once each partition
    // reaches it, every head fails and nothing else can run. Nothing tells poison
    // from an outage then; without a health check one head is
    // dead-lettered on a guess, its partition moves on and succeeds, and
    // that success is the evidence against the other two.
    const dlq = dlqProducer();
    const routed: { id: string; guess: boolean }[] = [];
    let calls = 0;
    const handled = new Set<string>();
    const { client, consumer } = await started(
      {
        ordering: 'partition',
        circuitBreaker: {},
        retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 50 },
        deadLetter: { producer: dlq.producer },
        handler: (message) => {
          calls += 1;
          if (message.offset === '25') return Promise.reject(new Error('poison'));
          handled.add(`${message.partition}:${message.offset}`);
          return Promise.resolve();
        },
      },
      3,
    );
    consumer.on('dlq.routed', (e) =>
      routed.push({ id: `${e.partition}:${e.offset}`, guess: e.guess === true }),
    );
    await Promise.all([0, 1, 2].map((p) => client.deliver('t', p, 40)));
    await tick(1000);
    expect(routed.map((r) => r.id).sort()).toEqual(['0:25', '1:25', '2:25']);
    // One guess broke the stall; the others went on evidence.
    expect(routed.filter((r) => r.guess)).toHaveLength(1);
    expect(handled.size).toBe(3 * 39);
    // The successes, 2 charged calls per poison message, and the stall:
    // twice volumeThreshold (20) failures of exhausted heads in a row before
    // the guess, and a few more of the other two before the evidence is clear.
    expect(calls).toBeLessThanOrEqual(3 * 39 + 3 * 2 + 20 + 2 * 10);
    await consumer.commit();
    for (const p of [0, 1, 2]) expect(client.committed.get(`t|${p}`)).toBe(40);
    await consumer.close();
  });

  it('an outage at every head without a health check: no call while open, calls bounded by the backoff, rare guesses that back off, all else handled after', async () => {
    let down = true;
    let calls = 0;
    let callsWhileOpen = 0;
    const dlq = dlqProducer();
    const { client, consumer } = await started(
      {
        ordering: 'partition',
        circuitBreaker: { volumeThreshold: 5, resetTimeoutMs: 1000 },
        retry: { maxAttempts: 2, initialDelayMs: 100, maxDelayMs: 2000 },
        deadLetter: { producer: dlq.producer },
        handler: () => {
          calls += 1;
          if (consumer.circuitState === 'open') callsWhileOpen += 1;
          return down ? Promise.reject(new Error('down')) : Promise.resolve();
        },
      },
      3,
    );
    const opened: number[] = [];
    const guesses: number[] = [];
    consumer.on('circuit.open', () => opened.push(Date.now()));
    consumer.on('dlq.routed', (e) => {
      expect(e.guess).toBe(true);
      guesses.push(Date.now());
    });
    const start = Date.now();
    await Promise.all([0, 1, 2].map((p) => client.deliver('t', p, 10)));
    await tick(200_000);
    expect(opened.length).toBeGreaterThan(0);
    expect(callsWhileOpen).toBe(0);
    // Once the heads have used their attempts, their probes tell nothing and
    // close the circuit on trial; each waits once and fails again, which
    // reopens it: about one call per trial, not a tight loop.
    expect(calls).toBeLessThanOrEqual(10 + 3 * (200_000 / 1000));
    // No livelock: nothing tells an outage from poison heads. The circuit
    // opened, so the downstream is in doubt and a guess waits for a long
    // stall: six rolling windows (60 s) of only those heads failing, then
    // twice as long each time.
    expect(guesses.length).toBeGreaterThanOrEqual(2);
    expect(guesses[0]! - start).toBeGreaterThanOrEqual(60_000);
    for (let i = 1; i < guesses.length; i += 1) {
      expect(guesses[i]! - guesses[i - 1]!).toBeGreaterThanOrEqual(60_000 * 2 ** i);
    }
    down = false;
    await tick(5000);
    expect(dlq.sent).toHaveLength(guesses.length);
    await consumer.commit();
    for (const p of [0, 1, 2]) expect(client.committed.get(`t|${p}`)).toBe(10);
    await consumer.close();
  });

  it('with a health check: an outage at every head dead-letters nothing; poison heads are dead-lettered on its word', async () => {
    let down = true;
    let checks = 0;
    let callsWhileOpen = 0;
    const dlq = dlqProducer();
    const { client, consumer } = await started(
      {
        ordering: 'partition',
        circuitBreaker: {
          volumeThreshold: 5,
          resetTimeoutMs: 500,
          healthCheck: () => {
            checks += 1;
            return Promise.resolve(!down);
          },
        },
        retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 50 },
        deadLetter: { producer: dlq.producer },
        handler: (message) => {
          if (consumer.circuitState === 'open') callsWhileOpen += 1;
          return down || message.offset === '3'
            ? Promise.reject(new Error('fails'))
            : Promise.resolve();
        },
      },
      3,
    );
    const states: string[] = [];
    consumer.on('circuit.open', () => states.push('open'));
    consumer.on('circuit.closed', () => states.push('closed'));
    await Promise.all([0, 1, 2].map((p) => client.deliver('t', p, 6)));
    await tick(3000);
    expect(states[0]).toBe('open');
    expect(dlq.sent).toEqual([]);
    // One check at a time: the stalled heads' one, then one per reset interval while open.
    expect(checks).toBeLessThanOrEqual(3000 / 500 + 2);
    expect(callsWhileOpen).toBe(0);
    down = false;
    await tick(3000);
    expect(consumer.circuitState).toBe('closed');
    expect(
      dlq.sent.map((r) => r.messages[0]!.headers!['x-bp-original-offset']?.toString()),
    ).toEqual(['3', '3', '3']);
    await consumer.commit();
    for (const p of [0, 1, 2]) expect(client.committed.get(`t|${p}`)).toBe(6);
    await consumer.close();
  });

  it('with a health check and no dead-letter topic, a stalled poison head holds visibly: nothing is skipped', async () => {
    let checks = 0;
    const { client, consumer } = await started({
      ordering: 'partition',
      circuitBreaker: {
        healthCheck: () => {
          checks += 1;
          return Promise.resolve(true);
        },
      },
      retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 50 },
      handler: (message) =>
        message.offset === '0' ? Promise.reject(new Error('poison')) : Promise.resolve(),
    });
    const failed: number[] = [];
    const errors: Error[] = [];
    consumer.on('message.failed', (e) => failed.push(Number(e.offset)));
    consumer.on('consumer.error', (e) => errors.push(e.error));
    await client.deliver('t', 0, 5);
    await tick(2000);
    // Nothing to act on a healthy answer with: the check is not asked, the head holds.
    expect(checks).toBe(0);
    expect(errors).toEqual([]);
    expect(failed.length).toBeGreaterThan(0);
    expect(new Set(failed)).toEqual(new Set([0]));
    await consumer.commit();
    expect(client.committed.get('t|0') ?? 0).toBe(0);
    await consumer.close({ drainTimeoutMs: 0 });
  });

  it('a brownout (60% of calls failing) dead-letters no message that would succeed', async () => {
    // 60% of calls fail, from a seeded sequence: the same run every time.
    const dlq = dlqProducer();
    let seed = 14;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const { client, consumer } = await started({
      ordering: 'unordered',
      concurrency: 32,
      circuitBreaker: { resetTimeoutMs: 200 },
      retry: { maxAttempts: 3, initialDelayMs: 5, maxDelayMs: 20 },
      deadLetter: { producer: dlq.producer },
      handler: () => (random() < 0.6 ? Promise.reject(new Error('503')) : Promise.resolve()),
    });
    const guesses: boolean[] = [];
    consumer.on('dlq.routed', (e) => guesses.push(e.guess === true));
    await client.deliver('t', 0, 200);
    await tick(20_000);
    expect(dlq.sent).toEqual([]);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(200);
    await consumer.close();
  });

  it('times out a handler that never settles and aborts its signal', async () => {
    const aborted: unknown[] = [];
    let calls = 0;
    const dlq = dlqProducer();
    const { client, consumer } = await started({
      handlerTimeoutMs: 100,
      retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 10 },
      deadLetter: { producer: dlq.producer },
      handler: (_message, context) => {
        calls += 1;
        context.signal.addEventListener('abort', () => aborted.push(context.signal.reason));
        return new Promise(() => undefined);
      },
    });
    await client.deliver('t', 0, 1);
    await tick(500);
    expect(calls).toBe(2);
    expect(aborted.map((e) => (e as Error).name)).toEqual([
      'HandlerTimeoutError',
      'HandlerTimeoutError',
    ]);
    expect(dlq.sent).toHaveLength(1);
    await consumer.close();
  });
});

describe('consumer core with a fake client: rebalances and close', () => {
  it('drops a revoked partition’s work: it is never committed by this member', async () => {
    const gates = new Gates();
    const { client, consumer } = await started(
      { ordering: 'unordered', concurrency: 10, handler: gates.handler },
      2,
    );
    const rebalances: { revoked: number; dropped: number }[] = [];
    consumer.on('group.rebalance', (e) => {
      if (e.phase === 'assigned')
        rebalances.push({ revoked: e.revoked.length, dropped: e.dropped });
    });
    await client.deliver('t', 0, 3);
    await client.deliver('t', 1, 3);
    await tick();
    client.assign('g', [{ topic: 't', partition: 1 }]);
    expect(rebalances).toEqual([{ revoked: 1, dropped: 3 }]);
    const commitsBefore = client.commits.length;
    gates.releaseAll();
    await tick();
    await consumer.commit();
    const later = client.commits.slice(commitsBefore).flat();
    expect(later.some((o) => o.partition === 0)).toBe(false);
    expect(client.committed.get('t|1')).toBe(3);
    expect(consumer.inFlight).toBe(0);
    await consumer.close();
  });

  it('drains in-flight work and commits it before the client rejoins', async () => {
    const gates = new Gates();
    const { client, consumer } = await started({
      ordering: 'unordered',
      concurrency: 2,
      maxInFlight: 2,
      rebalanceDrainTimeoutMs: 5000,
      handler: gates.handler,
    });
    const phases: string[] = [];
    consumer.on('group.rebalance', (e) => phases.push(e.phase));
    let returned = false;
    const batch = client.deliver('t', 0, 5).then(() => (returned = true));
    await tick();
    expect(gates.open.size).toBe(2);
    client.rebalancing = true;
    await tick(600);
    expect(phases).toContain('draining');
    expect(returned).toBe(false);
    gates.releaseAll();
    await tick(600);
    await batch;
    expect(client.committed.get('t|0')).toBe(2);
    // Admission stopped: the rest is fetched again after the rejoin.
    expect(gates.calls).toEqual(['0:0', '0:1']);
    await consumer.close();
  });

  it('close waits for in-flight work, commits it and disconnects', async () => {
    const { client, consumer } = await started({
      handler: () => new Promise<void>((resolve) => setTimeout(resolve, 50)),
    });
    await client.deliver('t', 0, 2);
    await tick();
    const closing = consumer.close();
    await tick(200);
    await closing;
    expect(consumer.state).toBe('closed');
    expect(client.committed.get('t|0')).toBe(2);
    expect(client.disconnected).toBe(true);
  });

  it('close gives up after its drain timeout: the handler’s signal aborts and the offset is not committed', async () => {
    let signal: AbortSignal | undefined;
    const { client, consumer } = await started({
      handler: (_message, context) => {
        signal = context.signal;
        return new Promise<void>(() => undefined);
      },
    });
    await client.deliver('t', 0, 1);
    await tick();
    const closing = consumer.close({ drainTimeoutMs: 100 });
    await tick(150);
    await closing;
    expect(signal?.aborted).toBe(true);
    expect((signal?.reason as { code?: string }).code).toBe('ERR_DRAIN_TIMEOUT');
    expect(client.committed.get('t|0')).toBe(0);
    expect(consumer.state).toBe('closed');
  });
});

describe('consumer core with a fake client: latency control', () => {
  /**
   * A downstream whose every call takes `latencyMs`, or `unloadedMs` when it
   * starts with at most 2 calls in the downstream (itself included): a
   * downstream whose latency comes from load. Counts the calls at once.
   */
  function downstream(initialMs: number, unloadedMs = initialMs) {
    const d = {
      latencyMs: initialMs,
      unloadedMs,
      running: 0,
      peak: 0,
      done: 0,
      handler: async (): Promise<void> => {
        d.running += 1;
        d.peak = Math.max(d.peak, d.running);
        const ms = d.running <= 2 ? d.unloadedMs : d.latencyMs;
        await new Promise((resolve) => setTimeout(resolve, ms));
        d.running -= 1;
        d.done += 1;
      },
    };
    return d;
  }

  const latency = { pauseAboveMs: 100, resumeBelowMs: 50, windowMs: 1000, probes: 2 };

  it('a latency pause caps admitted work to the probes at once, holds while probes are slow, and resumes on fast probes only', async () => {
    // 300 ms under load, 80 ms with only the probes in it: the pause lowers
    // latency, though not below resumeBelowMs, so it holds.
    const d = downstream(300, 80);
    const { client, consumer } = await started(
      { ordering: 'unordered', concurrency: 10, latency, handler: d.handler },
      2,
    );
    const events: [string, number][] = [];
    consumer.on('latency.high', (e) => events.push(['high', e.latencyMs]));
    consumer.on('latency.normal', (e) => events.push(['normal', e.latencyMs]));
    void client.deliver('t', 0, 500);
    void client.deliver('t', 1, 500);
    await tick(400);
    expect(d.peak).toBe(10);
    expect(events.map(([e]) => e)).toEqual(['high']);
    expect(consumer.concurrency).toBe(2);
    expect([...client.paused].sort()).toEqual(['t|0', 't|1']);
    // The calls running at the pause end; from then on only the probes run.
    await tick(300);
    expect(d.running).toBeLessThanOrEqual(2);
    // Slow probes for 10 s (ten windows): the pause holds, though the window long emptied.
    const before = d.done;
    for (let i = 0; i < 20; i += 1) {
      await tick(500);
      expect(d.running).toBeLessThanOrEqual(2);
    }
    expect(d.done - before).toBeGreaterThan(0);
    expect(events.map(([e]) => e)).toEqual(['high']);
    expect(consumer.concurrency).toBe(2);
    // The downstream recovers: two fast probes in a row end the pause.
    d.latencyMs = 10;
    d.unloadedMs = 10;
    await tick(1000);
    expect(events.map(([e]) => e)).toEqual(['high', 'normal']);
    const normal = events[1]![1];
    expect(normal).toBeGreaterThan(0);
    expect(normal).toBeLessThan(50);
    expect(consumer.concurrency).toBe(10);
    expect(client.paused.size).toBe(0);
    await tick(5000);
    expect(consumer.inFlight).toBe(0);
    await consumer.close();
  });

  it('a latency pause that cannot lower latency (300 ms at any load) ends with noEffect and full concurrency, and does not come back', async () => {
    const d = downstream(300);
    const { client, consumer } = await started(
      { ordering: 'unordered', concurrency: 10, latency, handler: d.handler },
      2,
    );
    const events: [string, LatencyEvent][] = [];
    consumer.on('latency.high', (e) => events.push(['high', e]));
    consumer.on('latency.normal', (e) => events.push(['normal', e]));
    void client.deliver('t', 0, 500);
    void client.deliver('t', 1, 500);
    await tick(400);
    expect(events.map(([e]) => e)).toEqual(['high']);
    expect(consumer.concurrency).toBe(2);
    // The calls from before the pause end, then two slow probes: no effect.
    await tick(1000);
    expect(events.map(([e]) => e)).toEqual(['high', 'normal']);
    const normal = events[1]![1];
    expect(normal.noEffect).toBe(true);
    expect(normal.latencyMs).toBeGreaterThanOrEqual(300);
    expect(normal.thresholdMs).toBe(normal.latencyMs * 1.5);
    expect(consumer.concurrency).toBe(10);
    expect(consumer.partitions().filter((p) => p.reasons.includes('latency'))).toEqual([]);
    // Five windows more at the same latency and full concurrency: no new pause.
    await tick(5000);
    expect(events.map(([e]) => e)).toEqual(['high', 'normal']);
    expect(d.peak).toBe(10);
    await tick(60_000);
    expect(d.done).toBe(1000);
    expect(consumer.inFlight).toBe(0);
    await consumer.close();
  });

  it('with adaptiveConcurrency, against a downstream of 4 slots: the limit settles, the pause comes after its cuts and ends with noEffect', async () => {
    let slow = false;
    let running = 0;
    let done = 0;
    const ended: number[] = [];
    const handler = async (): Promise<void> => {
      running += 1;
      // 4 slots of 300 ms once slow: latency grows with the calls sent.
      const ms = slow ? 300 * Math.max(1, running / 4) : 10;
      await new Promise((resolve) => setTimeout(resolve, ms));
      running -= 1;
      done += 1;
      ended.push(Date.now());
    };
    const { client, consumer } = await started(
      {
        ordering: 'unordered',
        concurrency: 16,
        maxInFlight: 400,
        adaptiveConcurrency: { targetLatencyMs: 100, minConcurrency: 2 },
        latency,
        handler,
      },
      2,
    );
    const events: [string, LatencyEvent][] = [];
    consumer.on('latency.high', (e) => events.push(['high', e]));
    consumer.on('latency.normal', (e) => events.push(['normal', e]));
    // Admission stops a batch at a latency pause (a real client fetches
    // the rest again after the resume; this fake does not), so not every
    // message delivered here is admitted: the test counts what ran.
    void client.deliver('t', 0, 1500);
    void client.deliver('t', 1, 1500);
    await tick(1000);
    expect(events).toEqual([]);
    slow = true;
    const spikeAt = Date.now();
    await tick(20_000);
    const noEffect = events.filter(([e, event]) => e === 'normal' && event.noEffect === true);
    expect(noEffect.length).toBeGreaterThanOrEqual(1);
    // The limit holds the downstream near its 4 slots, with no pause in force.
    expect(consumer.partitions().filter((p) => p.reasons.includes('latency'))).toEqual([]);
    expect(consumer.concurrency).toBeGreaterThanOrEqual(3);
    expect(consumer.concurrency).toBeLessThanOrEqual(6);
    const lastTen = ended.filter((t) => t >= spikeAt + 10_000).length;
    expect(lastTen).toBeGreaterThanOrEqual(0.9 * (4 / 0.3) * 10);
    slow = false;
    await tick(10_000);
    expect(consumer.inFlight).toBe(0);
    expect(done).toBeGreaterThan(lastTen);
    await consumer.close();
  }, 30_000);

  it('with nothing admitted left, lets one partition fetch probes; never resumes on an empty window', async () => {
    const d = downstream(300);
    const { client, consumer } = await started(
      { ordering: 'unordered', concurrency: 10, latency, handler: d.handler },
      2,
    );
    const normal: number[] = [];
    consumer.on('latency.normal', (e) => normal.push(e.latencyMs));
    void client.deliver('t', 0, 6);
    void client.deliver('t', 1, 6);
    await tick(400);
    expect([...client.paused].sort()).toEqual(['t|0', 't|1']);
    // Everything admitted ends; nothing is measured from here on.
    await tick(2000);
    expect(consumer.inFlight).toBe(0);
    // One partition fetches so probes can be had; the pause itself holds.
    expect(client.paused.size).toBe(1);
    expect(normal).toEqual([]);
    const first = client.paused.has('t|0') ? 1 : 0;
    // Still nothing to fetch there for a while: the other partition takes its turn.
    await tick(1500);
    expect([...client.paused]).toEqual([`t|${first}`]);
    expect(normal).toEqual([]);
    // A batch arrives there: the partition pauses again and the probes run from it.
    d.latencyMs = 10;
    d.unloadedMs = 10;
    void client.deliver('t', 1 - first, 20);
    await tick(600);
    expect(d.peak).toBeLessThanOrEqual(10);
    expect(normal).toHaveLength(1);
    expect(client.paused.size).toBe(0);
    await tick(1000);
    expect(consumer.inFlight).toBe(0);
    await consumer.close();
  });
});

describe('consumer core with a fake client: commit cadence and progress metadata', () => {
  it('commits soon after the first completion following an assignment, without waiting for the interval', async () => {
    const gates = new Gates();
    const { client, consumer } = await started({ handler: gates.handler });
    await client.deliver('t', 0, 3);
    await tick();
    expect(client.commits).toHaveLength(0);
    gates.release('0:0');
    await tick();
    expect(client.commits).toHaveLength(1);
    expect(client.committed.get('t|0')).toBe(1);
    // Later completions wait for the count or the interval (60 s here).
    gates.release('0:1');
    await tick(1000);
    expect(client.commits).toHaveLength(1);
    gates.releaseAll();
    await consumer.close();
  });

  it('commits after commitEveryMessages completions, no sooner than 50 ms after the last commit', async () => {
    const gates = new Gates();
    const { client, consumer } = await started({
      ordering: 'unordered',
      concurrency: 50,
      commitEveryMessages: 10,
      handler: gates.handler,
    });
    await client.deliver('t', 0, 40);
    await tick();
    gates.release('0:0');
    await tick();
    expect(client.commits).toHaveLength(1);
    for (let o = 1; o < 10; o += 1) gates.release(`0:${o}`);
    await tick(100);
    expect(client.commits).toHaveLength(1);
    gates.release('0:10');
    await tick();
    expect(client.commits).toHaveLength(2);
    expect(client.committed.get('t|0')).toBe(11);
    // Ten more right away: asked for at once, sent 50 ms after the last commit started.
    for (let o = 11; o < 21; o += 1) gates.release(`0:${o}`);
    await tick(49);
    expect(client.commits).toHaveLength(2);
    await tick(1);
    expect(client.commits).toHaveLength(3);
    expect(client.committed.get('t|0')).toBe(21);
    gates.releaseAll();
    await consumer.close();
  });

  it('keeps one commit at a time against a slow broker: completions and ticks queue nothing more, and one commit follows it', async () => {
    const gates = new Gates();
    const { client, consumer } = await started({
      ordering: 'unordered',
      concurrency: 100,
      commitIntervalMs: 1000,
      commitEveryMessages: 10,
      handler: gates.handler,
    });
    let answer: () => void = () => undefined;
    client.commitGate = new Promise((resolve) => (answer = resolve));
    await client.deliver('t', 0, 100);
    await tick();
    gates.release('0:0');
    await tick();
    expect(client.commits).toHaveLength(1);
    // The broker sits on that commit for 10 s while everything else completes.
    for (let o = 1; o < 100; o += 1) gates.release(`0:${o}`);
    await tick(10_000);
    expect(client.commits).toHaveLength(1);
    client.commitGate = undefined;
    answer();
    await tick(100);
    // The completions that piled up ask for one commit, with the latest position.
    expect(client.commits).toHaveLength(2);
    expect(client.committed.get('t|0')).toBe(100);
    await tick(5000);
    expect(client.commits.length).toBeLessThanOrEqual(3);
    await consumer.close();
  });

  it('marks offsets done above the position in the commit, and the next owner skips exactly those', async () => {
    const gates = new Gates();
    const { client, consumer } = await started({
      ordering: 'unordered',
      concurrency: 10,
      handler: gates.handler,
    });
    await client.deliver('t', 0, 10);
    await tick();
    for (const o of [2, 5, 6, 7, 9]) gates.release(`0:${o}`);
    await tick();
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(0);
    expect(client.committedMetadata.get('t|0')).toBe('kbp1/0/2.1.2.3.1.1');
    // The member dies with 0, 1, 3, 4 and 8 unfinished.
    await consumer.close({ drainTimeoutMs: 0 });

    const next = FakeClient.succeeding(client);
    const calls: string[] = [];
    const successor = new BackpressureConsumer(next, {
      topics: ['t'],
      clock,
      circuitBreaker: false,
      commitIntervalMs: 60_000,
      ordering: 'unordered',
      handler: (m) => void calls.push(`${m.partition}:${m.offset}`),
    });
    await successor.start();
    next.assign('g', [{ topic: 't', partition: 0 }]);
    expect(next.fetches).toEqual([[{ topic: 't', partition: 0 }]]);
    await next.deliver('t', 0, 10);
    await tick();
    expect(calls).toEqual(['0:0', '0:1', '0:3', '0:4', '0:8']);
    await successor.commit();
    expect(next.committed.get('t|0')).toBe(10);
    expect(next.committedMetadata.get('t|0')).toBeNull();
    await successor.close();
  });

  /**
   * A member taking over partition 0, whose group committed offset 0 with
   * `metadata`; it is handed three messages from offset 0.
   */
  async function successorWith(metadata: string, readable = true) {
    const previous = new FakeClient();
    previous.committed.set('t|0', 0);
    previous.committedMetadata.set('t|0', metadata);
    const client = FakeClient.succeeding(previous);
    client.readable = readable;
    const warnings: { reason?: unknown }[] = [];
    const calls: string[] = [];
    const consumer = new BackpressureConsumer(client, {
      topics: ['t'],
      clock,
      logger: {
        debug: () => undefined,
        info: () => undefined,
        warn: (obj: object) => void warnings.push(obj),
        error: () => undefined,
      },
      circuitBreaker: false,
      ordering: 'unordered',
      handler: (m) => void calls.push(m.offset),
    });
    await consumer.start();
    client.assign('g', [{ topic: 't', partition: 0 }]);
    await client.deliver('t', 0, 3);
    await tick();
    return { consumer, calls, warnings };
  }

  it.each([
    ['another client', 'job-42', /another client/],
    ['another format version', 'kbp9/0/1.1', /unknown format/],
    ['another position (the offset was reset)', 'kbp1/7/1.1', /committed offset is 0/],
    ['damage', 'kbp1/0/1.zz!', /malformed/],
  ])(
    'ignores metadata of %s with a warning, and runs every message',
    async (_, metadata, reason) => {
      const { consumer, calls, warnings } = await successorWith(metadata);
      expect(calls).toEqual(['0', '1', '2']);
      expect(warnings).toHaveLength(1);
      expect(String(warnings[0]!.reason)).toMatch(reason);
      await consumer.close();
    },
  );

  it('skips what valid metadata marks done, and runs everything when the client cannot read it', async () => {
    const read = await successorWith('kbp1/0/1.1');
    expect(read.calls).toEqual(['0', '2']);
    await read.consumer.close();
    const unread = await successorWith('kbp1/0/1.1', false);
    expect(unread.calls).toEqual(['0', '1', '2']);
    expect(unread.warnings).toEqual([]);
    await unread.consumer.close();
  });
});
