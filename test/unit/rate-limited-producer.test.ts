import type { ProducerRecord, RecordMetadata } from 'kafkajs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ConfigError,
  ProducerBufferFullError,
  ProducerClosedError,
  ProducerDrainTimeoutError,
  ProducerStoppedError,
} from '../../src/errors.js';
import type { LagStatus } from '../../src/lag/lag-status.js';
import {
  resolveProducerOptions,
  type RateLimitedProducerOptions,
} from '../../src/producer/options.js';
import {
  RateLimitedProducer,
  type ProducerBufferDrainedEvent,
  type ProducerBufferFullEvent,
  type ProducerErrorEvent,
  type ProducerSendFailedEvent,
  type ProducerThrottledEvent,
} from '../../src/producer/rate-limited-producer.js';

// ---- a fake KafkaJS producer whose sends the test answers ----------------

interface SendCall {
  readonly record: ProducerRecord;
  readonly at: number;
  ack(metadata?: RecordMetadata[]): void;
  fail(error: Error): void;
}

function fakeProducer({ autoAck = true }: { autoAck?: boolean } = {}) {
  const calls: SendCall[] = [];
  let auto = autoAck;
  let outstanding = 0;
  let maxOutstanding = 0;
  const producer = {
    send: vi.fn(
      (record: ProducerRecord) =>
        new Promise<RecordMetadata[]>((resolve, reject) => {
          const n = calls.length;
          outstanding += 1;
          maxOutstanding = Math.max(maxOutstanding, outstanding);
          let answered = false;
          const call: SendCall = {
            record,
            at: Date.now(),
            ack: (metadata) => {
              if (answered) return;
              answered = true;
              outstanding -= 1;
              resolve(
                metadata ?? [
                  { topicName: record.topic, partition: 0, errorCode: 0, baseOffset: String(n) },
                ],
              );
            },
            fail: (error) => {
              if (answered) return;
              answered = true;
              outstanding -= 1;
              reject(error);
            },
          };
          calls.push(call);
          if (auto) call.ack();
        }),
    ),
    disconnect: vi.fn(async () => {}),
  };
  return {
    producer,
    calls,
    setAutoAck(value: boolean) {
      auto = value;
    },
    get maxOutstanding() {
      return maxOutstanding;
    },
    sentValues: () => calls.flatMap((c) => c.record.messages.map((m) => String(m.value))),
    sentCount: () => calls.reduce((n, c) => n + c.record.messages.length, 0),
    batchSizes: () => calls.map((c) => c.record.messages.length),
  };
}

type Outcome<T> =
  | { status: 'pending' }
  | { status: 'fulfilled'; value: T }
  | { status: 'rejected'; error: unknown };

/** Observes a promise without awaiting it (and without unhandled rejections). */
function track<T>(promise: Promise<T>): { readonly outcome: Outcome<T> } {
  const box: { outcome: Outcome<T> } = { outcome: { status: 'pending' } };
  promise.then(
    (value) => {
      box.outcome = { status: 'fulfilled', value };
    },
    (error: unknown) => {
      box.outcome = { status: 'rejected', error };
    },
  );
  return box;
}

function errorOf(box: { readonly outcome: Outcome<unknown> }): unknown {
  if (box.outcome.status !== 'rejected') {
    throw new Error(`expected a rejection, got ${box.outcome.status}`);
  }
  return box.outcome.error;
}

const clock = { now: () => Date.now() };
const tick = (ms = 0) => vi.advanceTimersByTimeAsync(ms);
/** Awaits a promise while advancing the fake clock (bottleneck and the buckets need timers to run). */
async function until<T>(promise: Promise<T>, limitMs = 60_000): Promise<T> {
  const box = track(promise);
  for (let waited = 0; box.outcome.status === 'pending' && waited < limitMs; waited += 1)
    await tick(1);
  return promise;
}
const one = (value: string, topic = 't'): ProducerRecord => ({ topic, messages: [{ value }] });
/** Fire and forget: the outcome is checked elsewhere (or the afterEach close rejects it). */
const quiet = (promise: Promise<unknown>): void => {
  promise.catch(() => {});
};

let open: RateLimitedProducer[] = [];

function make(
  options: RateLimitedProducerOptions = {},
  fake = fakeProducer(),
): { rp: RateLimitedProducer; fake: ReturnType<typeof fakeProducer> } {
  const rp = new RateLimitedProducer(fake.producer, options, { clock });
  open.push(rp);
  return { rp, fake };
}

function collect<E>(rp: RateLimitedProducer, event: Parameters<RateLimitedProducer['on']>[0]): E[] {
  const seen: E[] = [];
  rp.on(event, (payload: unknown) => seen.push(payload as E));
  return seen;
}

beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(async () => {
  for (const rp of open) {
    const closing = rp.close({ timeoutMs: 0 });
    await vi.runAllTimersAsync();
    await closing;
  }
  open = [];
  vi.useRealTimers();
});

// ---- options ---------------------------------------------------------------

describe('options', () => {
  const invalid: [string, unknown, string][] = [
    ['zero rate', { messagesPerSecond: 0 }, 'messagesPerSecond'],
    ['negative rate', { messagesPerSecond: -5 }, 'messagesPerSecond'],
    ['NaN rate', { messagesPerSecond: Number.NaN }, 'messagesPerSecond'],
    ['string byte rate', { bytesPerSecond: '100' }, 'bytesPerSecond'],
    ['zero in flight', { maxInFlightRequests: 0 }, 'maxInFlightRequests'],
    ['fractional in flight', { maxInFlightRequests: 1.5 }, 'maxInFlightRequests'],
    ['zero buffer messages', { maxBufferedMessages: 0 }, 'maxBufferedMessages'],
    ['negative buffer bytes', { maxBufferedBytes: -1 }, 'maxBufferedBytes'],
    ['infinite buffer bytes', { maxBufferedBytes: Number.POSITIVE_INFINITY }, 'maxBufferedBytes'],
    ['negative block', { maxBlockMs: -1 }, 'maxBlockMs'],
    ['fractional block', { maxBlockMs: 1.5 }, 'maxBlockMs'],
    ['non-boolean blockOnFull', { blockOnFull: 'yes' }, 'blockOnFull'],
    ['infinite linger', { lingerMs: Number.POSITIVE_INFINITY }, 'lingerMs'],
    ['zero batch messages', { maxBatchMessages: 0 }, 'maxBatchMessages'],
    ['fractional batch bytes', { maxBatchBytes: 0.5 }, 'maxBatchBytes'],
    ['zero warning factor', { warningRateFactor: 0 }, 'warningRateFactor'],
    ['warning factor above 1', { warningRateFactor: 1.5 }, 'warningRateFactor'],
    ['lag signal without status', { lagSignal: {} }, 'lagSignal.status'],
    ['lag signal not an object', { lagSignal: () => 'ok' }, 'lagSignal'],
    [
      'lag signal zero interval',
      { lagSignal: { status: () => 'ok', intervalMs: 0 } },
      'lagSignal.intervalMs',
    ],
    ['lag signal unknown key', { lagSignal: { status: () => 'ok', every: 5 } }, 'lagSignal.every'],
    ['non-boolean disconnectOnClose', { disconnectOnClose: 1 }, 'disconnectOnClose'],
    ['negative close timeout', { closeTimeoutMs: -1 }, 'closeTimeoutMs'],
    ['typo in a key', { messagePerSecond: 5 }, 'messagePerSecond'],
    ['not an object', 'fast', 'options'],
  ];

  it.each(invalid)('rejects %s, naming the option', (_name, input, option) => {
    let caught: unknown;
    try {
      resolveProducerOptions(input as RateLimitedProducerOptions);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const error = caught as ConfigError;
    expect(error.code).toBe('ERR_CONFIG');
    expect(error.option).toBe(option);
    expect(error.expected.length).toBeGreaterThan(0);
  });

  it('the constructor throws the same typed error', () => {
    expect(
      () => new RateLimitedProducer(fakeProducer().producer, { maxBatchMessages: -1 }),
    ).toThrow(ConfigError);
    expect(
      () => new RateLimitedProducer({} as unknown as ReturnType<typeof fakeProducer>['producer']),
    ).toThrow(/`producer`/);
  });

  it('fills defaults into a frozen object and leaves the input alone', () => {
    const input = Object.freeze({
      messagesPerSecond: 100,
      lagSignal: Object.freeze({ status: () => 'ok' as const }),
    });
    const resolved = resolveProducerOptions(input);
    expect(Object.isFrozen(resolved)).toBe(true);
    expect(Object.isFrozen(resolved.lagSignal)).toBe(true);
    expect(resolved).toMatchObject({
      messagesPerSecond: 100,
      bytesPerSecond: Number.POSITIVE_INFINITY,
      maxInFlightRequests: 5,
      maxBlockMs: 60_000,
      blockOnFull: true,
      lingerMs: 0,
      warningRateFactor: 0.5,
      disconnectOnClose: true,
      closeTimeoutMs: 30_000,
    });
    expect(resolved.lagSignal?.intervalMs).toBe(5000);
    expect(input).toEqual({ messagesPerSecond: 100, lagSignal: input.lagSignal });
    expect(
      resolveProducerOptions({ messagesPerSecond: Number.POSITIVE_INFINITY }).messagesPerSecond,
    ).toBe(Number.POSITIVE_INFINITY);
  });

  it('rejects a malformed record with a typed error and sends nothing', async () => {
    const { rp, fake } = make();
    await expect(rp.send({ topic: '', messages: [] })).rejects.toMatchObject({
      option: 'record.topic',
    });
    await expect(
      rp.send({ topic: 't', messages: [{ value: undefined as unknown as string }] }),
    ).rejects.toMatchObject({ option: 'record.messages[0].value' });
    await expect(
      rp.send({ topic: 't', messages: [{ value: 'x', headers: { h: 5 as unknown as string } }] }),
    ).rejects.toMatchObject({ option: 'record.messages[0].headers.h' });
    await tick(10);
    expect(fake.calls).toHaveLength(0);
    expect(rp.bufferedMessages).toBe(0);
  });
});

// ---- batching ----------------------------------------------------------------

describe('batching', () => {
  it('sends what queued behind an in-flight request in one call, and resolves each caller', async () => {
    const { rp, fake } = make({ maxInFlightRequests: 1 }, fakeProducer({ autoAck: false }));
    const first = track(rp.send(one('a')));
    await tick(5);
    const rest = ['b', 'c', 'd', 'e'].map((v) => track(rp.send(one(v))));
    await tick(5);
    expect(fake.calls).toHaveLength(1);
    expect(rp.bufferedMessages).toBe(4);
    expect(rp.inFlightRequests).toBe(1);

    fake.calls[0]?.ack();
    await tick(5);
    expect(first.outcome.status).toBe('fulfilled');
    expect(fake.batchSizes()).toEqual([1, 4]);
    expect(fake.sentValues()).toEqual(['a', 'b', 'c', 'd', 'e']);
    fake.calls[1]?.ack();
    await tick(5);
    for (const r of rest) {
      expect(r.outcome).toEqual({
        status: 'fulfilled',
        value: [{ topicName: 't', partition: 0, errorCode: 0, baseOffset: '1' }],
      });
    }
  });

  it('caps batches by maxBatchMessages and maxBatchBytes; a larger message goes alone', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBatchMessages: 3, maxBatchBytes: 250 }, fake);
    const v = (n: number, c: string) => c.repeat(n);
    const first = track(rp.send(one(v(10, 'a'))));
    await tick(5);
    const sends = [
      first,
      ...[
        ...[1, 2, 3, 4].map((i) => one(v(10, String(i)))),
        one(v(100, 'x')),
        one(v(100, 'y')),
        one(v(100, 'z')),
        one(v(1000, 'L')),
        one(v(10, 'q')),
      ].map((r) => track(rp.send(r))),
    ];
    for (let i = 0; i < 8; i += 1) {
      fake.calls[i]?.ack();
      await tick(5);
    }
    const batches = fake.calls.map((c) => c.record.messages.map((m) => String(m.value).length));
    // [a] went alone; then 3 by count; then 10 + 100 + 100 (a fourth would pass 250 bytes or 3 messages);
    // z alone (z + L > 250); L alone although larger than maxBatchBytes; q.
    expect(batches).toEqual([[10], [10, 10, 10], [10, 100, 100], [100], [1000], [10]]);
    expect(sends.every((s) => s.outcome.status === 'fulfilled')).toBe(true);
  });

  it('batches only the same topic and settings, keeping the order within a topic', async () => {
    const { rp, fake } = make({ maxInFlightRequests: 1 }, fakeProducer({ autoAck: false }));
    quiet(rp.send(one('x', 'other')));
    await tick(5);
    quiet(rp.send({ topic: 'A', messages: [{ value: 'A1' }] }));
    quiet(rp.send({ topic: 'B', messages: [{ value: 'B1' }] }));
    quiet(rp.send({ topic: 'A', messages: [{ value: 'A2' }] }));
    quiet(rp.send({ topic: 'A', acks: 1, messages: [{ value: 'A3' }] }));
    quiet(rp.send({ topic: 'A', messages: [{ value: 'A4' }] }));
    for (let i = 0; i < 5; i += 1) {
      fake.calls[i]?.ack();
      await tick(5);
    }
    const batches = fake.calls.map((c) => [
      c.record.topic,
      c.record.acks,
      ...c.record.messages.map((m) => String(m.value)),
    ]);
    expect(batches).toEqual([
      ['other', undefined, 'x'],
      ['A', undefined, 'A1', 'A2'],
      ['B', undefined, 'B1'],
      ['A', 1, 'A3'],
      ['A', undefined, 'A4'],
    ]);
  });

  it('keeps acks, timeout and compression of the record', async () => {
    const { rp, fake } = make();
    await until(
      rp.send({ topic: 't', acks: 1, timeout: 1234, compression: 1, messages: [{ value: 'v' }] }),
    );
    expect(fake.calls[0]?.record).toEqual({
      topic: 't',
      acks: 1,
      timeout: 1234,
      compression: 1,
      messages: [{ value: 'v' }],
    });
  });

  it('waits lingerMs for a batch to fill, and no longer once it is full', async () => {
    const { rp, fake } = make({ lingerMs: 50, maxBatchMessages: 3 });
    quiet(rp.send(one('a')));
    await tick(10);
    quiet(rp.send(one('b')));
    await tick(30);
    expect(fake.calls).toHaveLength(0);
    await tick(15);
    expect(fake.batchSizes()).toEqual([2]);

    for (const v of ['c', 'd', 'e']) quiet(rp.send(one(v)));
    await tick(5);
    expect(fake.batchSizes()).toEqual([2, 3]);
  });

  it('splits a record larger than a batch and resolves it once every part is acknowledged', async () => {
    const { rp, fake } = make(
      { maxBatchMessages: 2, maxInFlightRequests: 1 },
      fakeProducer({ autoAck: false }),
    );
    const big = track(
      rp.send({ topic: 't', messages: ['1', '2', '3', '4', '5'].map((value) => ({ value })) }),
    );
    await tick(5);
    fake.calls[0]?.ack();
    await tick(5);
    fake.calls[1]?.ack();
    await tick(5);
    expect(big.outcome.status).toBe('pending');
    fake.calls[2]?.ack();
    await tick(5);
    expect(fake.batchSizes()).toEqual([2, 2, 1]);
    expect(big.outcome.status).toBe('fulfilled');
    expect((big.outcome as { value: RecordMetadata[] }).value.map((m) => m.baseOffset)).toEqual([
      '0',
      '1',
      '2',
    ]);
  });

  it('counts key, value and header bytes', async () => {
    const { rp } = make({ maxInFlightRequests: 1 }, fakeProducer({ autoAck: false }));
    quiet(rp.send(one('first')));
    await tick(5);
    quiet(
      rp.send({
        topic: 't',
        messages: [
          {
            key: 'ab',
            value: Buffer.alloc(10),
            headers: { h: 'xyz', multi: ['a', Buffer.from('bc')], none: undefined },
          },
          { key: null, value: null },
          { value: 'é' },
        ],
      }),
    );
    // 2 + 10 + (1 + 3) + (5 + 1 + 2) = 24; 0; 2 (UTF-8)
    expect(rp.bufferedMessages).toBe(3);
    expect(rp.bufferedBytes).toBe(26);
  });
});

// ---- rates -------------------------------------------------------------------

describe('rates', () => {
  it('holds messagesPerSecond', async () => {
    const { rp, fake } = make({ messagesPerSecond: 50 });
    for (let i = 0; i < 300; i += 1) quiet(rp.send(one(String(i))));
    await tick(2000);
    // The first message goes at once, then one every 20 ms.
    expect(fake.sentCount()).toBeGreaterThanOrEqual(99);
    expect(fake.sentCount()).toBeLessThanOrEqual(102);
  });

  it('holds bytesPerSecond with mixed sizes', async () => {
    const { rp, fake } = make({ bytesPerSecond: 1000 });
    const sizes = [50, 150, 100, 300, 10];
    for (let i = 0; i < 100; i += 1) quiet(rp.send(one('x'.repeat(sizes[i % sizes.length] ?? 1))));
    await tick(3000);
    const bytes = fake.sentValues().reduce((n, v) => n + v.length, 0);
    // 3000 bytes of tokens, plus at most the one message the bucket went into debt for.
    expect(bytes).toBeGreaterThanOrEqual(2700);
    expect(bytes).toBeLessThanOrEqual(3300);
  });

  it('sizes batches by the tokens that accumulated while a request was in flight', async () => {
    const { rp, fake } = make(
      { messagesPerSecond: 100, maxInFlightRequests: 1 },
      fakeProducer({ autoAck: false }),
    );
    for (let i = 0; i < 100; i += 1) quiet(rp.send(one(String(i))));
    await tick(200);
    fake.calls[0]?.ack();
    await tick(5);
    expect(fake.batchSizes()[0]).toBe(1);
    // ~200 ms at 100/s, minus the one the first send borrowed.
    expect(fake.batchSizes()[1]).toBeGreaterThanOrEqual(18);
    expect(fake.batchSizes()[1]).toBeLessThanOrEqual(21);
  });

  it('never exceeds maxInFlightRequests, and setLimits changes it at run time', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 2, maxBatchMessages: 1 }, fake);
    for (let i = 0; i < 10; i += 1) quiet(rp.send(one(String(i))));
    await tick(20);
    expect(fake.calls).toHaveLength(2);
    expect(rp.inFlightRequests).toBe(2);

    rp.setLimits({ maxInFlightRequests: 4 });
    await tick(20);
    expect(fake.calls).toHaveLength(4);
    expect(fake.maxOutstanding).toBe(4);
    expect(rp.limits.maxInFlightRequests).toBe(4);
  });

  it('setLimits changes the rate at run time and emits producer.throttled', async () => {
    const { rp, fake } = make({ messagesPerSecond: 10 });
    const throttled = collect<ProducerThrottledEvent>(rp, 'producer.throttled');
    for (let i = 0; i < 200; i += 1) quiet(rp.send(one(String(i))));
    await tick(1000);
    const before = fake.sentCount();
    expect(before).toBeGreaterThanOrEqual(10);
    expect(before).toBeLessThanOrEqual(12);

    rp.setLimits({ messagesPerSecond: 40 });
    await tick(1000);
    const after = fake.sentCount() - before;
    expect(after).toBeGreaterThanOrEqual(38);
    expect(after).toBeLessThanOrEqual(42);
    expect(throttled).toEqual([
      expect.objectContaining({
        cause: 'limits',
        messagesPerSecond: 40,
        lagStatus: 'ok',
        accepting: true,
      }),
    ]);
  });

  it('setLimits rejects invalid values and changes nothing', () => {
    const { rp } = make({ messagesPerSecond: 10 });
    expect(() => rp.setLimits({ messagesPerSecond: 0 })).toThrow(
      expect.objectContaining({ option: 'limits.messagesPerSecond' }),
    );
    expect(() => rp.setLimits({ rate: 5 } as never)).toThrow(
      expect.objectContaining({ option: 'limits.rate' }),
    );
    expect(() => rp.setLimits({ maxInFlightRequests: 2, bytesPerSecond: -1 })).toThrow(ConfigError);
    expect(rp.limits).toEqual({
      messagesPerSecond: 10,
      bytesPerSecond: Number.POSITIVE_INFINITY,
      maxInFlightRequests: 5,
    });
  });
});

// ---- bounded buffer ------------------------------------------------------------

describe('bounded buffer', () => {
  it('blocks a send that does not fit, then rejects it with a typed error after maxBlockMs', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBufferedMessages: 2, maxBlockMs: 500 }, fake);
    const full = collect<ProducerBufferFullEvent>(rp, 'producer.buffer-full');
    const accepted = [track(rp.send(one('a')))];
    await tick(5);
    accepted.push(track(rp.send(one('b'))), track(rp.send(one('c'))));
    expect(rp.bufferedMessages).toBe(2);
    const blocked = track(rp.send(one('d')));
    await tick(5);
    expect(rp.blockedSends).toBe(1);
    expect(full).toEqual([
      {
        bufferedMessages: 2,
        bufferedBytes: 2,
        maxBufferedMessages: 2,
        maxBufferedBytes: 32 * 1024 * 1024,
        blocking: true,
      },
    ]);

    await tick(485);
    expect(blocked.outcome.status).toBe('pending');
    await tick(15);
    const error = errorOf(blocked);
    expect(error).toBeInstanceOf(ProducerBufferFullError);
    expect(error).toMatchObject({
      code: 'ERR_PRODUCER_BUFFER_FULL',
      retriable: true,
      bufferedMessages: 2,
    });
    expect((error as ProducerBufferFullError).waitedMs).toBeGreaterThanOrEqual(500);
    expect(rp.blockedSends).toBe(0);

    // Nothing accepted earlier was lost.
    expect(accepted.every((a) => a.outcome.status === 'pending')).toBe(true);
    fake.setAutoAck(true);
    fake.calls[0]?.ack();
    await until(rp.flush());
    expect(accepted.every((a) => a.outcome.status === 'fulfilled')).toBe(true);
    expect(fake.sentValues()).toEqual(['a', 'b', 'c']);
  });

  it('rejects at once with blockOnFull: false', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBufferedBytes: 10, blockOnFull: false }, fake);
    quiet(rp.send(one('x')));
    await tick(5);
    quiet(rp.send(one('123456789')));
    await expect(rp.send(one('ab'))).rejects.toMatchObject({
      code: 'ERR_PRODUCER_BUFFER_FULL',
      waitedMs: 0,
    });
    expect(rp.blockedSends).toBe(0);
  });

  it('admits a blocked send when space frees, and emits buffer-drained once empty', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make(
      { maxInFlightRequests: 1, maxBufferedMessages: 1, maxBlockMs: 10_000 },
      fake,
    );
    const drained = collect<ProducerBufferDrainedEvent>(rp, 'producer.buffer-drained');
    const sends = ['a', 'b', 'c'].map((v) => track(rp.send(one(v))));
    await tick(5);
    expect(rp.blockedSends).toBe(1);
    fake.calls[0]?.ack();
    await tick(5);
    expect(rp.blockedSends).toBe(0);
    expect(drained).toHaveLength(0);
    fake.calls[1]?.ack();
    await tick(5);
    expect(drained).toHaveLength(1);
    expect(drained[0]?.blockedSends).toBe(0);
    fake.calls[2]?.ack();
    await tick(5);
    expect(sends.map((s) => s.outcome.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
  });

  it('admits blocked sends in arrival order: a small send waits behind a big one', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBufferedMessages: 3, maxBlockMs: 100 }, fake);
    quiet(rp.send(one('0')));
    await tick(5);
    quiet(rp.send(one('1')));
    quiet(rp.send(one('2')));
    const big = track(rp.send({ topic: 't', messages: [{ value: 'x' }, { value: 'y' }] }));
    const small = track(rp.send(one('z')));
    await tick(5);
    expect(rp.blockedSends).toBe(2);
    await tick(100);
    expect(errorOf(big)).toBeInstanceOf(ProducerBufferFullError);
    // Once the big one expired, the small one fitted.
    expect(small.outcome.status).toBe('pending');
    expect(rp.blockedSends).toBe(0);
    expect(rp.bufferedMessages).toBe(3);
  });

  it('accepts a record larger than the whole buffer when the buffer is empty', async () => {
    const { rp, fake } = make({ maxBufferedMessages: 2, maxBufferedBytes: 5 });
    await until(
      rp.send({ topic: 't', messages: [{ value: 'abcdef' }, { value: 'g' }, { value: 'h' }] }),
    );
    expect(fake.sentCount()).toBe(3);
  });
});

// ---- failures: every promise settles ----------------------------------------------

describe('failures', () => {
  it('rejects every caller of a failed send with its error and emits send-failed, once', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1 }, fake);
    const failed = collect<ProducerSendFailedEvent>(rp, 'producer.send-failed');
    const first = track(rp.send(one('a')));
    await tick(5);
    const batch = ['b', 'c'].map((v) => track(rp.send(one(v))));
    fake.calls[0]?.ack();
    await tick(5);
    const boom = new Error('broker says no');
    fake.calls[1]?.fail(boom);
    await tick(5);
    expect(first.outcome.status).toBe('fulfilled');
    expect(batch.map(errorOf)).toEqual([boom, boom]);
    expect(failed).toEqual([{ topic: 't', messages: 2, bytes: 2, sends: 2, error: boom }]);
    expect(fake.calls).toHaveLength(2);
  });

  it('drops the queued rest of a split record whose first part failed, never sending it', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBatchMessages: 2 }, fake);
    const big = track(
      rp.send({ topic: 't', messages: ['1', '2', '3', '4', '5'].map((value) => ({ value })) }),
    );
    const other = track(rp.send(one('other', 'u')));
    await tick(5);
    fake.calls[0]?.fail(new Error('nope'));
    await tick(5);
    expect(errorOf(big)).toMatchObject({ message: 'nope' });
    expect(rp.bufferedMessages).toBe(0);
    fake.calls[1]?.ack();
    await tick(5);
    expect(fake.sentValues()).toEqual(['1', '2', 'other']);
    expect(other.outcome.status).toBe('fulfilled');
  });

  it('settles every send under random failures, and delivers every accepted message exactly once', async () => {
    let seed = 42;
    const random = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make(
      {
        maxInFlightRequests: 3,
        maxBatchMessages: 7,
        maxBufferedMessages: 40,
        maxBlockMs: 300,
        messagesPerSecond: 2000,
      },
      fake,
    );
    const outcomes: { outcome: Outcome<RecordMetadata[]> }[] = [];
    let answered = 0;
    for (let round = 0; round < 60; round += 1) {
      const n = 1 + Math.floor(random() * 5);
      outcomes.push(
        track(
          rp.send({
            topic: random() < 0.5 ? 'a' : 'b',
            messages: Array.from({ length: n }, (_, i) => ({ value: `${round}.${i}` })),
          }),
        ),
      );
      await tick(Math.floor(random() * 10));
      for (; answered < fake.calls.length; answered += 1) {
        const call = fake.calls[answered];
        if (random() < 0.2) call?.fail(new Error(`failed ${answered}`));
        else call?.ack();
      }
    }
    fake.setAutoAck(true);
    for (; answered < fake.calls.length; answered += 1) fake.calls[answered]?.ack();
    await tick(1000);
    await until(rp.flush());
    expect(outcomes.filter((o) => o.outcome.status === 'pending')).toHaveLength(0);
    const values = fake.sentValues();
    expect(new Set(values).size).toBe(values.length);
    expect(outcomes.some((o) => o.outcome.status === 'rejected')).toBe(true);
    expect(outcomes.some((o) => o.outcome.status === 'fulfilled')).toBe(true);
    expect(rp.bufferedMessages).toBe(0);
    expect(rp.pendingSends).toBe(0);
  });

  it('a throwing listener does not break delivery', async () => {
    const { rp, fake } = make({ messagesPerSecond: 100 });
    rp.on('producer.throttled', () => {
      throw new Error('listener bug');
    });
    rp.setLimits({ messagesPerSecond: 1000 });
    await expect(until(rp.send(one('a')))).resolves.toHaveLength(1);
    expect(fake.sentCount()).toBe(1);
  });
});

// ---- flush and close ------------------------------------------------------------

describe('flush and close', () => {
  it('flush resolves once everything accepted before it has settled, skipping the linger', async () => {
    const { rp, fake } = make({ lingerMs: 60_000, messagesPerSecond: 100 });
    const sends = Array.from({ length: 20 }, (_, i) => track(rp.send(one(String(i)))));
    const flushed = track(rp.flush());
    await tick(150);
    expect(flushed.outcome.status).toBe('pending');
    await tick(100);
    expect(flushed.outcome.status).toBe('fulfilled');
    expect(sends.every((s) => s.outcome.status === 'fulfilled')).toBe(true);
    expect(fake.sentCount()).toBe(20);
  });

  it('flush with a timeout rejects with ERR_DRAIN_TIMEOUT and the sends carry on', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({}, fake);
    const send = track(rp.send(one('a')));
    const flushed = track(rp.flush({ timeoutMs: 100 }));
    await tick(100);
    expect(errorOf(flushed)).toBeInstanceOf(ProducerDrainTimeoutError);
    expect(errorOf(flushed)).toMatchObject({
      code: 'ERR_DRAIN_TIMEOUT',
      operation: 'flush',
      pendingSends: 1,
    });
    fake.calls[0]?.ack();
    await tick(5);
    expect(send.outcome.status).toBe('fulfilled');
  });

  it('close delivers what was accepted, then disconnects; it is idempotent and refuses new sends', async () => {
    const { rp, fake } = make({ messagesPerSecond: 20 });
    const sends = Array.from({ length: 10 }, (_, i) => track(rp.send(one(String(i)))));
    const closing = rp.close();
    expect(rp.close()).toBe(closing);
    expect(rp.state).toBe('closing');
    await expect(rp.send(one('late'))).rejects.toBeInstanceOf(ProducerClosedError);
    await tick(600);
    await closing;
    expect(rp.state).toBe('closed');
    expect(sends.every((s) => s.outcome.status === 'fulfilled')).toBe(true);
    expect(fake.sentCount()).toBe(10);
    expect(fake.producer.disconnect).toHaveBeenCalledTimes(1);
    await until(rp.close());
    expect(fake.producer.disconnect).toHaveBeenCalledTimes(1);
    await expect(rp.send(one('later'))).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('close leaves the producer connected with disconnectOnClose: false', async () => {
    const { rp, fake } = make({ disconnectOnClose: false });
    await until(rp.send(one('a')));
    await until(rp.close());
    expect(fake.producer.disconnect).not.toHaveBeenCalled();
  });

  it('close rejects sends still blocked at once: they were never accepted', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBufferedMessages: 1 }, fake);
    const accepted = [track(rp.send(one('a'))), track(rp.send(one('b')))];
    await tick(5);
    const blocked = track(rp.send(one('c')));
    await tick(5);
    const closing = track(rp.close());
    await tick(1);
    expect(errorOf(blocked)).toMatchObject({ code: 'ERR_CLOSED', mayHaveBeenWritten: false });
    fake.setAutoAck(true);
    fake.calls[0]?.ack();
    await tick(10);
    expect(closing.outcome.status).toBe('fulfilled');
    expect(accepted.map((a) => a.outcome.status)).toEqual(['fulfilled', 'fulfilled']);
  });

  it('close times out: in-flight and queued callers reject with ERR_CLOSED, then it disconnects', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, closeTimeoutMs: 1000 }, fake);
    const errors = collect<ProducerErrorEvent>(rp, 'producer.error');
    const inFlight = track(rp.send(one('a')));
    await tick(5);
    const queued = track(rp.send(one('b')));
    const closing = track(rp.close());
    await tick(995);
    expect(closing.outcome.status).toBe('pending');
    await tick(10);
    expect(closing.outcome.status).toBe('fulfilled');
    expect(errorOf(inFlight)).toMatchObject({ code: 'ERR_CLOSED', mayHaveBeenWritten: true });
    expect(errorOf(queued)).toMatchObject({ code: 'ERR_CLOSED', mayHaveBeenWritten: false });
    expect(errors).toEqual([
      {
        during: 'close',
        error: expect.objectContaining({ code: 'ERR_DRAIN_TIMEOUT', pendingSends: 2 }),
      },
    ]);
    expect(fake.producer.disconnect).toHaveBeenCalledTimes(1);
    expect(fake.calls).toHaveLength(1);
    expect(rp.bufferedMessages).toBe(0);
    // A late answer from the stalled request changes nothing.
    fake.calls[0]?.ack();
    await tick(5);
    expect(errorOf(inFlight)).toBeInstanceOf(ProducerClosedError);
  });

  it('close reports a failed disconnect as producer.error and still resolves', async () => {
    const fake = fakeProducer();
    fake.producer.disconnect.mockRejectedValueOnce(new Error('socket gone'));
    const { rp } = make({}, fake);
    const errors = collect<ProducerErrorEvent>(rp, 'producer.error');
    await until(rp.close());
    expect(errors).toEqual([{ during: 'disconnect', error: new Error('socket gone') }]);
  });

  it('leaves no timer behind after close', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make(
      {
        messagesPerSecond: 5,
        lingerMs: 1000,
        maxBufferedMessages: 1,
        lagSignal: { status: () => 'ok', intervalMs: 50 },
        closeTimeoutMs: 200,
      },
      fake,
    );
    quiet(rp.send(one('a')));
    quiet(rp.send(one('b')));
    quiet(rp.send(one('c')));
    await tick(20);
    expect(vi.getTimerCount()).toBeGreaterThan(0);
    const closing = rp.close();
    await tick(300);
    await closing;
    expect(vi.getTimerCount()).toBe(0);
  });
});

// ---- lag ------------------------------------------------------------------------------

describe('lag status', () => {
  it('warning slows down by warningRateFactor, critical stops new sends, ok restores', async () => {
    const { rp, fake } = make({ messagesPerSecond: 40, maxBlockMs: 10_000 });
    const throttled = collect<ProducerThrottledEvent>(rp, 'producer.throttled');
    for (let i = 0; i < 200; i += 1) quiet(rp.send(one(String(i))));
    await tick(1000);
    const atOk = fake.sentCount();
    expect(atOk).toBeGreaterThanOrEqual(39);
    expect(atOk).toBeLessThanOrEqual(42);

    rp.setLagStatus('warning', 'lag 5000 > 1000');
    rp.setLagStatus('warning', 'still');
    await tick(1000);
    const atWarning = fake.sentCount() - atOk;
    expect(atWarning).toBeGreaterThanOrEqual(19);
    expect(atWarning).toBeLessThanOrEqual(21);
    expect(rp.limits.messagesPerSecond).toBe(20);

    rp.setLagStatus('critical', 'lag 50000');
    const stopped = track(rp.send(one('while-critical')));
    await tick(1000);
    // Already-buffered messages are still delivered (at the warning rate); the new one waits.
    expect(fake.sentCount() - atOk - atWarning).toBeGreaterThanOrEqual(19);
    expect(stopped.outcome.status).toBe('pending');
    expect(rp.accepting).toBe(false);
    expect(rp.blockedSends).toBe(1);

    rp.setLagStatus('ok');
    await tick(1);
    expect(rp.blockedSends).toBe(0);
    expect(rp.limits.messagesPerSecond).toBe(40);
    expect(
      throttled.map((e) => [
        e.lagStatus,
        e.previousLagStatus,
        e.messagesPerSecond,
        e.accepting,
        e.cause,
      ]),
    ).toEqual([
      ['warning', 'ok', 20, true, 'lag'],
      ['critical', 'warning', 20, false, 'lag'],
      ['ok', 'critical', 40, true, 'lag'],
    ]);
    expect(throttled[0]?.reason).toBe('lag 5000 > 1000');
    await until(rp.flush());
    expect(stopped.outcome.status).toBe('fulfilled');
  });

  it('at critical, a send rejects with ERR_PRODUCER_STOPPED after maxBlockMs (or at once)', async () => {
    const { rp, fake } = make({ maxBlockMs: 300 });
    rp.setLagStatus('critical', 'group far behind');
    const waiting = track(rp.send(one('a')));
    await tick(299);
    expect(waiting.outcome.status).toBe('pending');
    await tick(2);
    const error = errorOf(waiting);
    expect(error).toBeInstanceOf(ProducerStoppedError);
    expect(error).toMatchObject({
      code: 'ERR_PRODUCER_STOPPED',
      reason: 'group far behind',
      retriable: true,
    });
    expect(fake.calls).toHaveLength(0);

    const { rp: atOnce } = make({ blockOnFull: false });
    atOnce.setLagStatus('critical');
    await expect(atOnce.send(one('b'))).rejects.toBeInstanceOf(ProducerStoppedError);
  });

  it('stops polling at close, even when a status call was still pending', async () => {
    let calls = 0;
    let answer: ((status: LagStatus) => void) | undefined;
    const { rp } = make({
      lagSignal: {
        intervalMs: 50,
        status: () => {
          calls += 1;
          return new Promise<LagStatus>((resolve) => {
            answer = resolve;
          });
        },
      },
    });
    const throttled = collect<ProducerThrottledEvent>(rp, 'producer.throttled');
    expect(calls).toBe(1);
    await until(rp.close());
    answer?.('critical');
    await tick(1);
    expect(vi.getTimerCount()).toBe(0);
    await tick(500);
    expect(calls).toBe(1);
    expect(throttled).toEqual([]);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('refuses an unknown status', () => {
    const { rp } = make();
    expect(() => rp.setLagStatus('red' as LagStatus)).toThrow(ConfigError);
    expect(rp.lagStatus).toBe('ok');
  });

  it('polls lagSignal.status, follows it, and reports a failing signal without changing the status', async () => {
    const statuses: (LagStatus | Error | string)[] = [
      'ok',
      'warning',
      'critical',
      new Error('admin down'),
      'bogus',
      'ok',
    ];
    let calls = 0;
    const { rp } = make({
      messagesPerSecond: 100,
      lagSignal: {
        intervalMs: 100,
        status: async () => {
          const next = statuses[Math.min(calls, statuses.length - 1)];
          calls += 1;
          if (next instanceof Error) throw next;
          return next as LagStatus;
        },
      },
    });
    const throttled = collect<ProducerThrottledEvent>(rp, 'producer.throttled');
    const errors = collect<ProducerErrorEvent>(rp, 'producer.error');
    await tick(1);
    expect(calls).toBe(1);
    await tick(100);
    expect(rp.lagStatus).toBe('warning');
    await tick(100);
    expect(rp.lagStatus).toBe('critical');
    await tick(200);
    expect(rp.lagStatus).toBe('critical');
    expect(errors.map((e) => [e.during, e.error.message])).toEqual([
      ['lag-signal', 'admin down'],
      ['lag-signal', expect.stringContaining('lagSignal.status()')],
    ]);
    await tick(100);
    expect(rp.lagStatus).toBe('ok');
    expect(throttled.map((e) => e.lagStatus)).toEqual(['warning', 'critical', 'ok']);

    await until(rp.close());
    const after = calls;
    await tick(1000);
    expect(calls).toBe(after);
  });
});

// ---- the concurrency gate ------------------------------------------------------

/** Lets promise callbacks run without moving the (fake) clock: no timer can fire. */
async function microtasks(): Promise<void> {
  for (let i = 0; i < 20; i += 1) await Promise.resolve();
}

describe('concurrency gate', () => {
  it('grants a slot without a timer turn: the next request leaves on the answer that freed it', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBatchMessages: 1 }, fake);
    const sends = ['a', 'b', 'c'].map((v) => track(rp.send(one(v))));
    await microtasks();
    expect(fake.calls).toHaveLength(1);
    expect(vi.getTimerCount()).toBe(0);
    fake.calls[0]?.ack();
    await microtasks();
    expect(fake.calls).toHaveLength(2);
    fake.calls[1]?.ack();
    await microtasks();
    expect(fake.calls).toHaveLength(3);
    fake.calls[2]?.ack();
    await microtasks();
    expect(sends.map((s) => s.outcome.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    // The fake clock never moved and no timer was ever set.
    expect(vi.getTimerCount()).toBe(0);
  });

  it('holds the bound in force under concurrency changes at random moments', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 3, maxBatchMessages: 1 }, fake);
    const violations: string[] = [];
    const send = fake.producer.send.getMockImplementation();
    let outstanding = 0;
    fake.producer.send.mockImplementation((record: ProducerRecord) => {
      if (outstanding >= rp.limits.maxInFlightRequests) {
        violations.push(`${outstanding} outstanding at limit ${rp.limits.maxInFlightRequests}`);
      }
      outstanding += 1;
      const answer = send!(record);
      void answer.finally(() => {
        outstanding -= 1;
      });
      return answer;
    });
    const sends = Array.from({ length: 300 }, (_, i) => track(rp.send(one(String(i)))));
    // A seeded walk: answer the oldest request, or change the limit, and look after each step.
    let seed = 7;
    const random = () => (seed = (seed * 48271) % 2147483647) / 2147483647;
    let answered = 0;
    for (let step = 0; step < 2000 && answered < 300; step += 1) {
      if (random() < 0.2) rp.setLimits({ maxInFlightRequests: 1 + Math.floor(random() * 6) });
      else if (answered < fake.calls.length) fake.calls[answered++]?.ack();
      await microtasks();
      expect(rp.inFlightRequests).toBe(outstanding);
    }
    rp.setLimits({ maxInFlightRequests: 5 });
    fake.setAutoAck(true);
    for (const call of fake.calls) call.ack();
    await tick(10);
    expect(violations).toEqual([]);
    expect(sends.every((s) => s.outcome.status === 'fulfilled')).toBe(true);
    expect(fake.sentValues()).toEqual(Array.from({ length: 300 }, (_, i) => String(i)));
  });

  it('a partial batch waits for the request in flight and grows; full batches go side by side', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 5, maxBatchMessages: 3 }, fake);
    quiet(rp.send(one('a')));
    await microtasks();
    for (const v of ['b', 'c']) quiet(rp.send(one(v)));
    await microtasks();
    // Two waiting, a batch holds three: they wait for the answer to 'a'.
    expect(fake.batchSizes()).toEqual([1]);
    for (const v of ['d', 'e', 'f', 'g']) quiet(rp.send(one(v)));
    await microtasks();
    // Six waiting: two full batches go at once, beside 'a'.
    expect(fake.batchSizes()).toEqual([1, 3, 3]);
    expect(rp.inFlightRequests).toBe(3);
    quiet(rp.send(one('h')));
    await microtasks();
    expect(fake.calls).toHaveLength(3);
    fake.calls[0]?.ack();
    fake.calls[1]?.ack();
    await microtasks();
    // A partial batch waits while any request is in flight.
    expect(fake.batchSizes()).toEqual([1, 3, 3]);
    fake.calls[2]?.ack();
    await microtasks();
    expect(fake.batchSizes()).toEqual([1, 3, 3, 1]);
    expect(fake.sentValues()).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']);
  });

  it('a partial batch waits at most 5 ms for a request in flight, so a stuck request holds nothing back', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 5 }, fake);
    const stuck = track(rp.send(one('stuck')));
    await microtasks();
    const behind = track(rp.send(one('behind')));
    await tick(4);
    expect(fake.calls).toHaveLength(1);
    await tick(1);
    expect(fake.batchSizes()).toEqual([1, 1]);
    fake.calls[1]?.ack();
    await microtasks();
    expect(behind.outcome.status).toBe('fulfilled');
    expect(stuck.outcome.status).toBe('pending');
  });

  it('lowering the limit lets running requests finish and starts none until below it', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 4, maxBatchMessages: 1 }, fake);
    for (let i = 0; i < 10; i += 1) quiet(rp.send(one(String(i))));
    await microtasks();
    expect(fake.calls).toHaveLength(4);
    rp.setLimits({ maxInFlightRequests: 2 });
    fake.calls[0]?.ack();
    fake.calls[1]?.ack();
    await microtasks();
    expect(fake.calls).toHaveLength(4);
    expect(rp.inFlightRequests).toBe(2);
    fake.calls[2]?.ack();
    await microtasks();
    expect(fake.calls).toHaveLength(5);
    expect(rp.inFlightRequests).toBe(2);
  });

  it('releases sends waiting for a slot in arrival order, each caller with its own answer', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 2, maxBatchMessages: 1 }, fake);
    const order: string[] = [];
    const sends = Array.from({ length: 8 }, (_, i) =>
      rp.send(one(String(i))).then(() => order.push(String(i))),
    );
    await microtasks();
    expect(fake.calls).toHaveLength(2);
    expect(rp.bufferedMessages).toBe(6);
    for (let i = 0; i < 8; i += 1) {
      fake.calls[i]?.ack();
      await microtasks();
    }
    await Promise.all(sends);
    expect(fake.sentValues()).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
    expect(order).toEqual(['0', '1', '2', '3', '4', '5', '6', '7']);
  });

  it('flush and close wait for the sends still waiting for a slot, and deliver them', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBatchMessages: 1 }, fake);
    const sends = ['a', 'b', 'c'].map((v) => track(rp.send(one(v))));
    await microtasks();
    const flushed = track(rp.flush());
    const closing = track(rp.close());
    for (let i = 0; i < 3; i += 1) {
      await microtasks();
      expect(flushed.outcome.status).toBe('pending');
      fake.calls[i]?.ack();
    }
    await tick(1);
    expect(flushed.outcome.status).toBe('fulfilled');
    expect(closing.outcome.status).toBe('fulfilled');
    expect(sends.map((s) => s.outcome.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    expect(fake.sentValues()).toEqual(['a', 'b', 'c']);
    expect(fake.producer.disconnect).toHaveBeenCalledTimes(1);
  });

  it('close with no time left rejects the sends waiting for a slot as never written', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBatchMessages: 1 }, fake);
    const sends = ['a', 'b', 'c'].map((v) => track(rp.send(one(v))));
    await microtasks();
    const closing = track(rp.close({ timeoutMs: 0 }));
    await tick(1);
    expect(closing.outcome.status).toBe('fulfilled');
    expect(errorOf(sends[0]!)).toMatchObject({ code: 'ERR_CLOSED', mayHaveBeenWritten: true });
    expect(errorOf(sends[1]!)).toMatchObject({ code: 'ERR_CLOSED', mayHaveBeenWritten: false });
    expect(errorOf(sends[2]!)).toMatchObject({ code: 'ERR_CLOSED', mayHaveBeenWritten: false });
    fake.calls[0]?.ack();
    await tick(1);
    expect(fake.calls).toHaveLength(1);
  });
});

// ---- cancellation and disposal -------------------------------------------------

describe('signals', () => {
  it('an already aborted signal rejects the send with its reason; nothing is buffered or sent', async () => {
    const { rp, fake } = make();
    const reason = new Error('caller gave up');
    await expect(rp.send(one('a'), { signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    await tick(5);
    expect(rp.bufferedMessages).toBe(0);
    expect(rp.pendingSends).toBe(0);
    expect(fake.calls).toHaveLength(0);
  });

  it('a send aborted while buffered leaves the buffer, rejects with the reason and is never sent', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1 }, fake);
    const first = track(rp.send(one('a')));
    await microtasks();
    const controller = new AbortController();
    const aborted = track(
      rp.send(
        { topic: 't', messages: [{ value: 'b1' }, { value: 'b2' }] },
        { signal: controller.signal },
      ),
    );
    const after = track(rp.send(one('c')));
    await microtasks();
    expect(rp.bufferedMessages).toBe(3);
    controller.abort('stop');
    await microtasks();
    expect(aborted.outcome).toEqual({ status: 'rejected', error: 'stop' });
    expect(rp.bufferedMessages).toBe(1);
    expect(rp.pendingSends).toBe(2);
    fake.setAutoAck(true);
    fake.calls[0]?.ack();
    await tick(5);
    expect(first.outcome.status).toBe('fulfilled');
    expect(after.outcome.status).toBe('fulfilled');
    expect(fake.sentValues()).toEqual(['a', 'c']);
  });

  it('a send aborted while blocked outside a full buffer rejects with the reason and lets the next one in', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBufferedMessages: 1 }, fake);
    quiet(rp.send(one('a')));
    await microtasks();
    quiet(rp.send(one('b')));
    const controller = new AbortController();
    const big = track(
      rp.send(
        { topic: 't', messages: [{ value: 'x' }, { value: 'y' }] },
        { signal: controller.signal },
      ),
    );
    const small = track(rp.send(one('c')));
    await microtasks();
    expect(rp.blockedSends).toBe(2);
    const reason = new DOMException('aborted', 'AbortError');
    controller.abort(reason);
    await microtasks();
    expect(big.outcome).toEqual({ status: 'rejected', error: reason });
    expect(rp.blockedSends).toBe(1);
    fake.setAutoAck(true);
    fake.calls[0]?.ack();
    await tick(5);
    expect(small.outcome.status).toBe('fulfilled');
    expect(fake.sentValues()).toEqual(['a', 'b', 'c']);
  });

  it('an abort after the send was handed to KafkaJS changes nothing: the broker answer settles it', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({}, fake);
    const controller = new AbortController();
    const send = track(rp.send(one('a'), { signal: controller.signal }));
    await microtasks();
    expect(fake.calls).toHaveLength(1);
    controller.abort();
    await microtasks();
    expect(send.outcome.status).toBe('pending');
    fake.calls[0]?.ack();
    await microtasks();
    expect(send.outcome.status).toBe('fulfilled');
  });

  it('removes its abort listener once the send settles', async () => {
    const { rp } = make();
    const listeners = new Set<unknown>();
    const signal = {
      aborted: false,
      reason: undefined,
      addEventListener: (_type: string, listener: unknown) => listeners.add(listener),
      removeEventListener: (_type: string, listener: unknown) => listeners.delete(listener),
    } as unknown as AbortSignal;
    const send = rp.send(one('a'), { signal });
    expect(listeners.size).toBe(1);
    await until(send);
    expect(listeners.size).toBe(0);
  });

  it('refuses a signal that is not an AbortSignal with a typed error', async () => {
    const { rp } = make();
    await expect(
      rp.send(one('a'), { signal: 'now' as unknown as AbortSignal }),
    ).rejects.toMatchObject({
      code: 'ERR_CONFIG',
      option: 'options.signal',
    });
    await expect(rp.flush({ signal: {} as AbortSignal })).rejects.toMatchObject({
      option: 'signal',
    });
    await expect(rp.close({ signal: 5 as unknown as AbortSignal })).rejects.toMatchObject({
      option: 'signal',
    });
    expect(rp.state).toBe('open');
  });

  it('an aborted flush rejects with the reason; the records keep being delivered', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({}, fake);
    const send = track(rp.send(one('a')));
    await microtasks();
    const controller = new AbortController();
    const flushed = track(rp.flush({ signal: controller.signal }));
    controller.abort('enough');
    await microtasks();
    expect(flushed.outcome).toEqual({ status: 'rejected', error: 'enough' });
    await expect(rp.flush({ signal: AbortSignal.abort('at once') })).rejects.toBe('at once');
    fake.calls[0]?.ack();
    await microtasks();
    expect(send.outcome.status).toBe('fulfilled');
  });

  it('an aborted close gives up as its timeout would: callers reject with ERR_CLOSED, then it disconnects', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, closeTimeoutMs: 60_000 }, fake);
    const errors = collect<ProducerErrorEvent>(rp, 'producer.error');
    const inFlight = track(rp.send(one('a')));
    await microtasks();
    const queued = track(rp.send(one('b')));
    const controller = new AbortController();
    const closing = track(rp.close({ signal: controller.signal }));
    await tick(100);
    expect(closing.outcome.status).toBe('pending');
    const reason = new Error('shutdown deadline');
    controller.abort(reason);
    await tick(1);
    expect(closing.outcome.status).toBe('fulfilled');
    expect(rp.state).toBe('closed');
    expect(errorOf(inFlight)).toMatchObject({
      code: 'ERR_CLOSED',
      mayHaveBeenWritten: true,
      cause: reason,
    });
    expect(errorOf(queued)).toMatchObject({ code: 'ERR_CLOSED', mayHaveBeenWritten: false });
    expect(fake.calls).toHaveLength(1);
    expect(fake.producer.disconnect).toHaveBeenCalledTimes(1);
    expect(errors).toEqual([]);
  });

  it('a signal given to a later close() call still cuts the close under way short', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({}, fake);
    const send = track(rp.send(one('a')));
    await microtasks();
    const first = rp.close();
    const controller = new AbortController();
    const second = rp.close({ signal: controller.signal });
    expect(second).toBe(first);
    controller.abort();
    await tick(1);
    await first;
    expect(errorOf(send)).toMatchObject({ code: 'ERR_CLOSED', mayHaveBeenWritten: true });
  });
});

describe('Symbol.asyncDispose', () => {
  it('is close() with its defaults', async () => {
    const { rp, fake } = make({ messagesPerSecond: 10 });
    const send = track(rp.send(one('a')));
    const disposing = track(rp[Symbol.asyncDispose]());
    expect(rp.state).toBe('closing');
    await tick(200);
    expect(disposing.outcome.status).toBe('fulfilled');
    expect(send.outcome.status).toBe('fulfilled');
    expect(fake.producer.disconnect).toHaveBeenCalledTimes(1);
    expect(rp[Symbol.asyncDispose]()).toBe(rp.close());
  });

  it('closes the producer when an `await using` scope ends', async () => {
    vi.useRealTimers();
    const fake = fakeProducer();
    let kept: RateLimitedProducer | undefined;
    {
      await using rp = new RateLimitedProducer(fake.producer, {}, { clock });
      kept = rp;
      await rp.send(one('a'));
      expect(rp.state).toBe('open');
    }
    expect(kept.state).toBe('closed');
    expect(fake.producer.disconnect).toHaveBeenCalledTimes(1);
    expect(fake.sentValues()).toEqual(['a']);
  });
});

describe('durations that become timers', () => {
  const MAX = 2 ** 31 - 1;
  it.each(['maxBlockMs', 'lingerMs', 'closeTimeoutMs'] as const)(
    'refuses %s above 2^31-1 ms and accepts 2^31-1',
    (option) => {
      expect(() => resolveProducerOptions({ [option]: 2 ** 31 })).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG', option, received: 2 ** 31 }),
      );
      expect(resolveProducerOptions({ [option]: MAX })[option]).toBe(MAX);
    },
  );

  it('refuses lagSignal.intervalMs above 2^31-1 ms', () => {
    expect(() =>
      resolveProducerOptions({ lagSignal: { status: () => 'ok', intervalMs: 2 ** 31 } }),
    ).toThrow(expect.objectContaining({ option: 'lagSignal.intervalMs' }));
    expect(
      resolveProducerOptions({ lagSignal: { status: () => 'ok', intervalMs: MAX } }).lagSignal
        ?.intervalMs,
    ).toBe(MAX);
  });

  it('refuses a flush or close timeoutMs above 2^31-1 ms; a refused close leaves it open', async () => {
    const { rp } = make();
    await expect(rp.flush({ timeoutMs: 2 ** 31 })).rejects.toMatchObject({ option: 'timeoutMs' });
    await expect(rp.close({ timeoutMs: 2 ** 31 })).rejects.toMatchObject({ option: 'timeoutMs' });
    expect(rp.state).toBe('open');
    await until(rp.send(one('a')));
  });

  it('a maxBlockMs of 2^31-1 really waits: the blocked send is still pending a day later', async () => {
    const fake = fakeProducer({ autoAck: false });
    const { rp } = make({ maxInFlightRequests: 1, maxBufferedMessages: 1, maxBlockMs: MAX }, fake);
    quiet(rp.send(one('a')));
    await microtasks();
    quiet(rp.send(one('b')));
    const blocked = track(rp.send(one('c')));
    await tick(24 * 3600 * 1000);
    expect(blocked.outcome.status).toBe('pending');
  });
});
