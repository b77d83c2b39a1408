import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ProducerRecord } from 'kafkajs';
import { BackpressureConsumer } from '../../src/consumer/backpressure-consumer.js';
import type {
  BackpressureConsumerOptions,
  BatchHandler,
  InboundMessage,
} from '../../src/consumer/options.js';
import { ConfigError, NonRetriableError } from '../../src/errors.js';
import { decideBatchFailure } from '../../src/consumer/failure/batch-policy.js';
import { FakeClient } from '../helpers/fake-client.js';

/**
 * The batch handler driven through the client port by a fake client and
 * fake timers, as in consumer-core.test.ts: which messages go together,
 * in what order, how many batches run at once, and what a failure does.
 */

const clock = { now: () => Date.now() };

beforeEach(() => {
  vi.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  vi.useRealTimers();
});

const tick = (ms = 0) => vi.advanceTimersByTimeAsync(ms);

type Options = Partial<BackpressureConsumerOptions<Buffer | null>>;

async function started(options: Options & { batchHandler: BatchHandler<Buffer | null> }) {
  const client = new FakeClient();
  const consumer = new BackpressureConsumer(client, {
    topics: ['t'],
    clock,
    circuitBreaker: false,
    commitIntervalMs: 60_000,
    ...options,
  });
  await consumer.start();
  client.assign('g', [{ topic: 't', partition: 0 }]);
  return { client, consumer };
}

const offsets = (messages: readonly InboundMessage<unknown>[]) =>
  messages.map((m) => Number(m.offset));

/** Batch calls the test settles by hand, in call order. */
class Calls {
  readonly calls: { offsets: number[]; keys: string[]; settle: (r?: unknown) => void }[] = [];
  readonly open = new Set<number>();

  handler: BatchHandler<Buffer | null> = (messages) => {
    const index = this.calls.length;
    this.open.add(index);
    return new Promise((resolve) => {
      this.calls.push({
        offsets: offsets(messages),
        keys: messages.map((m) => m.key?.toString() ?? ''),
        settle: (result) => {
          this.open.delete(index);
          resolve(result as void);
        },
      });
    });
  };

  settle(index: number, result?: unknown): void {
    this.calls[index]!.settle(result);
  }

  settleAll(): void {
    for (const index of [...this.open]) this.settle(index);
  }
}

function dlqProducer() {
  const sent: ProducerRecord[] = [];
  return {
    sent,
    producer: { send: (record: ProducerRecord) => (sent.push(record), Promise.resolve([])) },
  };
}

describe('batch handler: options', () => {
  const port = new FakeClient();
  const make = (options: Record<string, unknown>) => () =>
    new BackpressureConsumer(port, { topics: ['t'], ...options } as never);
  const rejects = (options: Record<string, unknown>, option: string) => {
    let caught: unknown;
    try {
      make(options)();
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    expect((caught as ConfigError).option).toBe(option);
  };

  it('takes exactly one of handler and batchHandler', () => {
    rejects({ handler: () => undefined, batchHandler: () => undefined }, 'handler');
    rejects({}, 'handler');
    rejects({ batchHandler: 'nope' }, 'batchHandler');
    expect(make({ batchHandler: () => undefined })).not.toThrow();
  });

  it('checks the batch options and refuses them without a batch handler', () => {
    rejects({ handler: () => undefined, batch: { maxMessages: 10 } }, 'batch');
    rejects({ batchHandler: () => undefined, batch: { maxMessages: 0 } }, 'batch.maxMessages');
    rejects({ batchHandler: () => undefined, batch: { maxMessages: 1.5 } }, 'batch.maxMessages');
    rejects(
      { batchHandler: () => undefined, maxInFlight: 100, batch: { maxMessages: 500 } },
      'batch.maxMessages',
    );
    rejects({ batchHandler: () => undefined, batch: { maxBytes: 0 } }, 'batch.maxBytes');
    rejects({ batchHandler: () => undefined, batch: { maxWaitMs: -1 } }, 'batch.maxWaitMs');
    rejects({ batchHandler: () => undefined, batch: { maxWait: 5 } }, 'batch.maxWait');
    rejects({ batchHandler: () => undefined, batch: 5 }, 'batch');
  });
});

describe('batch handler: forming batches', () => {
  it('partition ordering: one partition’s messages in order, one batch at a time', async () => {
    const calls = new Calls();
    const { client, consumer } = await started({
      batchHandler: calls.handler,
      concurrency: 4,
      batch: { maxMessages: 4, maxWaitMs: 0 },
    });
    await client.deliver('t', 0, 10);
    await tick();
    expect(calls.calls.map((c) => c.offsets)).toEqual([[0, 1, 2, 3]]);
    calls.settle(0);
    await tick();
    expect(calls.calls.map((c) => c.offsets)).toEqual([
      [0, 1, 2, 3],
      [4, 5, 6, 7],
    ]);
    calls.settle(1);
    await tick();
    expect(calls.calls[2]!.offsets).toEqual([8, 9]);
    calls.settle(2);
    await tick();
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(10);
    await consumer.close();
  });

  it('lingers up to maxWaitMs for a batch to fill, and goes at once when it is full', async () => {
    const calls = new Calls();
    const { client, consumer } = await started({
      batchHandler: calls.handler,
      ordering: 'unordered',
      batch: { maxMessages: 5, maxWaitMs: 50 },
    });
    await client.deliver('t', 0, 3);
    await tick(49);
    expect(calls.calls).toHaveLength(0);
    await client.deliver('t', 0, 1);
    await tick(1);
    expect(calls.calls.map((c) => c.offsets)).toEqual([[0, 1, 2, 3]]);
    await client.deliver('t', 0, 5);
    await tick();
    expect(calls.calls[1]!.offsets).toEqual([4, 5, 6, 7, 8]);
    calls.settleAll();
    await tick();
    await consumer.close();
  });

  it('keeps a batch within maxBytes; a message larger than it goes alone', async () => {
    const calls = new Calls();
    const { client, consumer } = await started({
      batchHandler: calls.handler,
      ordering: 'unordered',
      batch: { maxMessages: 10, maxBytes: 10, maxWaitMs: 0 },
    });
    await client.deliver('t', 0, [
      { value: 'aaaa' },
      { value: 'bbbb' },
      { value: 'cccc' },
      { value: 'x'.repeat(20) },
      { value: 'dd' },
    ]);
    await tick();
    expect(calls.calls.map((c) => c.offsets)).toEqual([[0, 1], [2], [3], [4]]);
    calls.settleAll();
    await tick();
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(5);
    await consumer.close();
  });

  it('concurrency counts batches', async () => {
    const calls = new Calls();
    const { client, consumer } = await started({
      batchHandler: calls.handler,
      ordering: 'unordered',
      concurrency: 2,
      batch: { maxMessages: 5, maxWaitMs: 0 },
    });
    await client.deliver('t', 0, 30);
    await tick();
    expect(calls.open.size).toBe(2);
    expect(consumer.activeHandlers).toBe(2);
    expect(calls.calls.map((c) => c.offsets.length)).toEqual([5, 5]);
    while (calls.open.size > 0) {
      calls.settleAll();
      await tick();
    }
    expect(calls.calls).toHaveLength(6);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(30);
    await consumer.close();
  });

  it('key ordering: many keys per batch, never a key in two batches at once, order kept per key', async () => {
    const calls = new Calls();
    const { client, consumer } = await started({
      batchHandler: calls.handler,
      ordering: 'key',
      concurrency: 4,
      batch: { maxMessages: 4, maxWaitMs: 0 },
    });
    const keys = ['a', 'b', 'a', 'c', 'a', 'd', 'b', 'e', 'a', 'f', 'c', 'a'];
    await client.deliver(
      't',
      0,
      keys.map((key) => ({ key })),
    );
    const seen = new Map<string, number[]>();
    let overlaps = 0;
    for (let round = 0; round < 20 && calls.calls.length < 100; round += 1) {
      await tick();
      const inFlight = [...calls.open].flatMap((i) => calls.calls[i]!.keys);
      if (new Set(inFlight).size !== inFlight.length) {
        // The same key in one batch twice is allowed; in two open batches it is not.
        const perBatch = [...calls.open].map((i) => new Set(calls.calls[i]!.keys));
        const all = perBatch.flatMap((s) => [...s]);
        if (new Set(all).size !== all.length) overlaps += 1;
      }
      // Settle the newest open batch first, to shake out ordering bugs.
      const newest = Math.max(...calls.open);
      if (!Number.isFinite(newest)) break;
      const call = calls.calls[newest]!;
      call.offsets.forEach((offset, i) => {
        const list = seen.get(call.keys[i]!) ?? [];
        list.push(offset);
        seen.set(call.keys[i]!, list);
      });
      calls.settle(newest);
    }
    expect(overlaps).toBe(0);
    expect([...seen.values()].flat().sort((x, y) => x - y)).toEqual(keys.map((_, i) => i));
    for (const [key, list] of seen) {
      const expected = keys.flatMap((k, i) => (k === key ? [i] : []));
      expect(list, `key ${key}`).toEqual(expected);
    }
    // Several keys went together in the first batch.
    expect(new Set(calls.calls[0]!.keys).size).toBeGreaterThan(1);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(keys.length);
    await consumer.close();
  });

  it('partition ordering: the next batch waits while a message of the last one is retried alone', async () => {
    const calls: number[][] = [];
    let fail = true;
    const { client, consumer } = await started({
      batch: { maxMessages: 10, maxWaitMs: 0 },
      retry: { initialDelayMs: 100, maxDelayMs: 100, jitter: 0 },
      batchHandler: (messages) => {
        calls.push(offsets(messages));
        const second = messages.find((m) => m.offset === '1');
        if (second !== undefined && fail) {
          fail = false;
          return Promise.resolve({ failed: [{ message: second, error: new Error('busy') }] });
        }
        return Promise.resolve();
      },
    });
    await client.deliver('t', 0, 3);
    await tick(10);
    await client.deliver('t', 0, 2);
    await tick(10);
    expect(calls).toEqual([[0, 1, 2]]);
    await tick(100);
    expect(calls).toEqual([[0, 1, 2], [1], [3, 4]]);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(5);
    await consumer.close();
  });

  it('key ordering: a key stays out while any of its messages in a batch is retried alone', async () => {
    const calls: number[][] = [];
    let fail = true;
    const { client, consumer } = await started({
      ordering: 'key',
      batch: { maxMessages: 10, maxWaitMs: 0 },
      retry: { initialDelayMs: 100, maxDelayMs: 100, jitter: 0 },
      batchHandler: (messages) => {
        calls.push(offsets(messages));
        const second = messages.find((m) => m.offset === '1');
        if (second !== undefined && fail) {
          fail = false;
          return Promise.resolve({ failed: [{ message: second, error: new Error('busy') }] });
        }
        return Promise.resolve();
      },
    });
    await client.deliver('t', 0, [{ key: 'a' }, { key: 'a' }, { key: 'b' }]);
    await tick(10);
    // Keys' heads first, then what waits behind them.
    expect(calls).toEqual([[0, 2, 1]]);
    await client.deliver('t', 0, [{ key: 'a' }, { key: 'c' }]);
    await tick(10);
    // c runs; a's next waits for offset 1's retry.
    expect(calls).toEqual([[0, 2, 1], [4]]);
    await tick(100);
    expect(calls).toEqual([[0, 2, 1], [4], [1], [3]]);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(5);
    await consumer.close();
  });

  it('emits handler.settled once per batch call with its size', async () => {
    const settled: { offset: string; messages: number; outcome: string }[] = [];
    const { client, consumer } = await started({
      batchHandler: () => Promise.resolve(),
      batch: { maxMessages: 4, maxWaitMs: 0 },
    });
    consumer.on('handler.settled', (e) =>
      settled.push({ offset: e.offset, messages: e.messages, outcome: e.outcome }),
    );
    await client.deliver('t', 0, 9);
    await tick();
    expect(settled).toEqual([
      { offset: '0', messages: 4, outcome: 'success' },
      { offset: '4', messages: 4, outcome: 'success' },
      { offset: '8', messages: 1, outcome: 'success' },
    ]);
    await consumer.close();
  });
});

describe('batch handler: failures', () => {
  it('a batch whose handler throws once is retried whole, after a backoff', async () => {
    const seen: number[][] = [];
    const retries: string[] = [];
    let failures = 1;
    const { client, consumer } = await started({
      batch: { maxMessages: 10, maxWaitMs: 0 },
      retry: { initialDelayMs: 100, maxDelayMs: 100, jitter: 0 },
      batchHandler: (messages) => {
        seen.push(offsets(messages));
        if (failures > 0) {
          failures -= 1;
          return Promise.reject(new Error('bulk insert refused'));
        }
        return Promise.resolve();
      },
    });
    consumer.on('message.retry', (e) => retries.push(`${e.offset}@${e.attempt}`));
    await client.deliver('t', 0, 5);
    await tick(99);
    expect(seen).toEqual([[0, 1, 2, 3, 4]]);
    await tick(1);
    expect(seen).toEqual([
      [0, 1, 2, 3, 4],
      [0, 1, 2, 3, 4],
    ]);
    expect(retries).toEqual(['0@1', '1@1', '2@1', '3@1', '4@1']);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(5);
    await consumer.close();
  });

  it.each([false, true])(
    'a poison message is split out and dead-lettered alone, the others handled once, in order (breaker %s)',
    async (breaker) => {
      const dlq = dlqProducer();
      const handled: number[] = [];
      const calls: number[][] = [];
      const { client, consumer } = await started({
        batch: { maxMessages: 8, maxWaitMs: 0 },
        retry: { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 10 },
        deadLetter: { producer: dlq.producer },
        ...(breaker ? { circuitBreaker: { volumeThreshold: 1000 } } : {}),
        batchHandler: (messages) => {
          calls.push(offsets(messages));
          if (messages.some((m) => m.offset === '5')) {
            return Promise.reject(new Error('constraint violated'));
          }
          handled.push(...offsets(messages));
          return Promise.resolve();
        },
      });
      const guesses: boolean[] = [];
      consumer.on('dlq.routed', (event) => guesses.push(event.guess ?? false));
      await client.deliver('t', 0, 8);
      await tick(1000);
      expect(dlq.sent).toHaveLength(1);
      expect(guesses).toEqual([breaker]);
      const letter = dlq.sent[0]!.messages[0]!;
      expect(letter.headers!['x-bp-original-offset']?.toString()).toBe('5');
      expect(letter.headers!['x-bp-error-message']?.toString()).toBe('constraint violated');
      expect(handled).toEqual([0, 1, 2, 3, 4, 6, 7]);
      // Whole twice, then halves one after the other; the poison alone for
      // its attempts. With the breaker on, the halves are not fresh samples
      // of the downstream (they hold a message known to fail), so nothing
      // since the batch first failed says the downstream works: the poison
      // fails twice more alone (a short stall) and is dead-lettered as a guess.
      expect(calls).toEqual([
        [0, 1, 2, 3, 4, 5, 6, 7],
        [0, 1, 2, 3, 4, 5, 6, 7],
        [0, 1, 2, 3],
        [4, 5, 6, 7],
        [4, 5],
        [4],
        ...Array.from({ length: breaker ? 4 : 2 }, () => [5]),
        [6, 7],
      ]);
      await consumer.commit();
      expect(client.committed.get('t|0')).toBe(8);
      await consumer.close();
    },
  );

  it('messages the handler reports as failed follow the retry and dead-letter rules alone; the rest are done', async () => {
    const dlq = dlqProducer();
    const calls: number[][] = [];
    let flaky = 1;
    const { client, consumer } = await started({
      batch: { maxMessages: 6, maxWaitMs: 0 },
      retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 10 },
      deadLetter: { producer: dlq.producer },
      batchHandler: (messages) => {
        calls.push(offsets(messages));
        const failed = messages.flatMap((message) => {
          if (message.offset === '1') return [{ message, error: new NonRetriableError('bad row') }];
          if (message.offset === '4' && flaky > 0) {
            flaky -= 1;
            return [{ message, error: new Error('lock timeout') }];
          }
          return [];
        });
        return Promise.resolve({ failed });
      },
    });
    const retried: string[] = [];
    consumer.on('message.retry', (e) => retried.push(e.offset));
    await client.deliver('t', 0, 6);
    await tick(200);
    expect(calls[0]).toEqual([0, 1, 2, 3, 4, 5]);
    expect(dlq.sent).toHaveLength(1);
    expect(dlq.sent[0]!.messages[0]!.headers!['x-bp-reason']?.toString()).toBe('non-retriable');
    expect(dlq.sent[0]!.messages[0]!.headers!['x-bp-original-offset']?.toString()).toBe('1');
    expect(retried).toEqual(['4']);
    // The retriable one ran again alone and succeeded.
    expect(calls.slice(1)).toEqual([[4]]);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(6);
    await consumer.close();
  });

  it('a message that fails to deserialize leaves its batch and is dead-lettered; the rest go together', async () => {
    const dlq = dlqProducer();
    const calls: number[][] = [];
    const payloads: unknown[] = [];
    const { client, consumer } = await started({
      batch: { maxMessages: 10, maxWaitMs: 0 },
      deadLetter: { producer: dlq.producer },
      deserialize: (message) => {
        const value = message.value!.toString();
        if (value === 'v2') throw new Error('not JSON');
        return value.toUpperCase() as never;
      },
      batchHandler: (messages) => {
        calls.push(offsets(messages));
        payloads.push(...messages.map((m) => m.payload));
        return Promise.resolve();
      },
    });
    await client.deliver('t', 0, 5);
    await tick(10);
    expect(calls).toEqual([[0, 1, 3, 4]]);
    expect(payloads).toEqual(['V0', 'V1', 'V3', 'V4']);
    expect(dlq.sent).toHaveLength(1);
    const headers = dlq.sent[0]!.messages[0]!.headers!;
    expect(headers['x-bp-reason']?.toString()).toBe('deserialization');
    expect(headers['x-bp-original-offset']?.toString()).toBe('2');
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(5);
    await consumer.close();
  });

  it('messages too old are shed before the call, with an event; the rest go together', async () => {
    const calls: number[][] = [];
    const shed: string[] = [];
    const { client, consumer } = await started({
      batch: { maxMessages: 10, maxWaitMs: 0 },
      shed: { maxAgeMs: 60_000, action: 'skip' },
      batchHandler: (messages) => {
        calls.push(offsets(messages));
        return Promise.resolve();
      },
    });
    consumer.on('message.shed', (e) => shed.push(e.offset));
    const old = Date.now() - 120_000;
    await client.deliver('t', 0, [{}, { timestamp: old }, {}, { timestamp: old }, {}]);
    await tick(10);
    expect(calls).toEqual([[0, 2, 4]]);
    expect(shed.sort()).toEqual(['1', '3']);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(5);
    await consumer.close();
  });

  it('a result naming a message outside the batch fails the call and is reported', async () => {
    const errors: string[] = [];
    let wrong = 1;
    const { client, consumer } = await started({
      batch: { maxMessages: 3, maxWaitMs: 0 },
      retry: { initialDelayMs: 10, maxDelayMs: 10 },
      batchHandler: () => {
        if (wrong-- > 0) {
          return Promise.resolve({ failed: [{ message: { offset: '99' }, error: 'x' }] } as never);
        }
        return Promise.resolve();
      },
    });
    consumer.on('consumer.error', (e) => errors.push(e.error.message));
    await client.deliver('t', 0, 3);
    await tick(100);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/not in the batch/);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(3);
    await consumer.close();
  });

  it('the breaker counts batch calls: an outage opens it, nothing is dead-lettered, all is handled after', async () => {
    const dlq = dlqProducer();
    let down = true;
    let handled = 0;
    const { client, consumer } = await started({
      ordering: 'unordered',
      concurrency: 4,
      batch: { maxMessages: 5, maxWaitMs: 0 },
      circuitBreaker: { volumeThreshold: 3, resetTimeoutMs: 1000 },
      retry: { maxAttempts: 3, initialDelayMs: 10, maxDelayMs: 50 },
      deadLetter: { producer: dlq.producer },
      batchHandler: (messages) => {
        if (down) return Promise.reject(new Error('database down'));
        handled += messages.length;
        return Promise.resolve();
      },
    });
    await client.deliver('t', 0, 20);
    await tick(200);
    expect(consumer.circuitState).toBe('open');
    down = false;
    await tick(1100);
    await tick(200);
    expect(consumer.circuitState).toBe('closed');
    expect(handled).toBe(20);
    expect(dlq.sent).toEqual([]);
    await consumer.commit();
    expect(client.committed.get('t|0')).toBe(20);
    await consumer.close();
  });

  it('close abandons a batch that does not finish: nothing of it is committed', async () => {
    const calls = new Calls();
    const { client, consumer } = await started({
      batchHandler: calls.handler,
      batch: { maxMessages: 4, maxWaitMs: 0 },
    });
    await client.deliver('t', 0, 6);
    await tick();
    calls.settle(0);
    await tick();
    expect(calls.calls[1]!.offsets).toEqual([4, 5]);
    const closed = consumer.close({ drainTimeoutMs: 100 });
    await tick(100);
    await closed;
    expect(client.committed.get('t|0')).toBe(4);
  });
});

describe('batch failure policy', () => {
  const retry = { initialDelayMs: 100, maxDelayMs: 1000, multiplier: 2, jitter: 0 };
  const facts = {
    refused: false,
    circuit: 'closed' as const,
    retriable: true,
    attempts: 1,
    maxAttempts: 3,
  };
  it('retries whole with backoff, splits when attempts are used up or the error is not retriable', () => {
    expect(decideBatchFailure(facts, retry)).toEqual({ kind: 'retry', delayMs: 100 });
    expect(decideBatchFailure({ ...facts, attempts: 2 }, retry)).toEqual({
      kind: 'retry',
      delayMs: 200,
    });
    expect(decideBatchFailure({ ...facts, attempts: 3 }, retry)).toEqual({ kind: 'split' });
    expect(decideBatchFailure({ ...facts, retriable: false }, retry)).toEqual({ kind: 'split' });
  });
  it('waits for the circuit, charging nothing, whatever the attempts', () => {
    expect(decideBatchFailure({ ...facts, refused: true, attempts: 3 }, retry)).toEqual({
      kind: 'wait-circuit',
      blame: false,
    });
    expect(decideBatchFailure({ ...facts, circuit: 'open', attempts: 3 }, retry)).toEqual({
      kind: 'wait-circuit',
      blame: true,
    });
  });
});
