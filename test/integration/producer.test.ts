import type { Message, Producer, ProducerRecord, RecordMetadata } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { ProducerBufferFullError } from '../../src/errors.js';
import type { LagStatus } from '../../src/lag/lag-status.js';
import type { RateLimitedProducerOptions } from '../../src/producer/options.js';
import {
  RateLimitedProducer,
  type ProducerBufferFullEvent,
  type ProducerThrottledEvent,
} from '../../src/producer/rate-limited-producer.js';
import {
  committedOffsets,
  createTopic,
  disconnectAll,
  endOffsets,
  newConsumer,
  newProducer,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const open: RateLimitedProducer[] = [];

afterAll(async () => {
  await Promise.all(open.map((p) => p.close({ timeoutMs: 2000 }).catch(() => undefined)));
  await disconnectAll();
});

/** Key + value + header bytes, counted the way the producer counts them. */
function bytesOf(message: Message): number {
  const size = (v: unknown) =>
    typeof v === 'string' ? Buffer.byteLength(v) : Buffer.isBuffer(v) ? v.length : 0;
  let n = size(message.key) + size(message.value);
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value === undefined) continue;
    n += Buffer.byteLength(name);
    for (const v of Array.isArray(value) ? value : [value]) n += size(v);
  }
  return n;
}

interface SentBatch {
  readonly startedAt: number;
  readonly ackedAt: number;
  readonly messages: number;
  readonly bytes: number;
}

/**
 * A connected KafkaJS producer with a spy in front of `send`, recording
 * when each request the rate-limited producer makes starts and is acknowledged.
 */
async function spiedProducer(): Promise<{
  target: Pick<Producer, 'send' | 'disconnect'>;
  batches: SentBatch[];
  warmUp(topic: string): Promise<void>;
}> {
  const producer = newProducer();
  await producer.connect();
  const batches: SentBatch[] = [];
  const target = {
    send: async (record: ProducerRecord): Promise<RecordMetadata[]> => {
      const startedAt = performance.now();
      const result = await producer.send(record);
      batches.push({
        startedAt,
        ackedAt: performance.now(),
        messages: record.messages.length,
        bytes: record.messages.reduce((n, m) => n + bytesOf(m), 0),
      });
      return result;
    },
    disconnect: () => producer.disconnect(),
  };
  // One unmeasured message first: KafkaJS fetches the topic's metadata and
  // connects to the leader on the first send, which would make the first
  // acknowledgement late and the measured span short.
  const warmUp = async (topic: string) => {
    await producer.send({ topic, messages: [{ value: 'warm-up' }] });
  };
  return { target, batches, warmUp };
}

function limited(
  target: Pick<Producer, 'send' | 'disconnect'>,
  options: RateLimitedProducerOptions,
): RateLimitedProducer {
  const rp = new RateLimitedProducer(target, options);
  open.push(rp);
  return rp;
}

/**
 * Achieved rate of `unit` (messages or bytes) per second, in the steady
 * state. The token bucket promises that each request starts only once
 * everything before it was paid for, so rate × (last start − first start)
 * equals what the requests in between carried. The first request is left
 * out of the count: it may carry the tokens the bucket gathered between the
 * producer's construction and the first send (up to one second's worth, the
 * documented burst after an idle period); the last one is left out because
 * it is paid for after the span ends. The same count over the span of the
 * acknowledgements is what a caller sees; both are returned.
 */
function achieved(batches: readonly SentBatch[], unit: 'messages' | 'bytes') {
  const byStart = [...batches].sort((a, b) => a.startedAt - b.startedAt);
  const first = byStart[0];
  const last = byStart.at(-1);
  if (first === undefined || last === undefined || byStart.length < 3) {
    throw new Error('too few requests to measure a rate');
  }
  const total = byStart.reduce((n, b) => n + b[unit], 0);
  const paid = total - first[unit] - last[unit];
  const acks = batches.map((b) => b.ackedAt).sort((a, b) => a - b);
  const ackSpan = (acks.at(-1) ?? 0) - (acks[0] ?? 0);
  return {
    total,
    firstRequest: first[unit],
    seconds: (last.startedAt - first.startedAt) / 1000,
    atSend: (paid * 1000) / (last.startedAt - first.startedAt),
    atAck: (paid * 1000) / ackSpan,
    requests: batches.length,
  };
}

async function totalEnd(topic: string): Promise<number> {
  let n = 0;
  for (const end of (await endOffsets(topic)).values()) n += end;
  return n;
}

async function readValues(topic: string, expected: number): Promise<string[]> {
  const values: string[] = [];
  const consumer = newConsumer(uniqueName('read'));
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      values.push(message.value?.toString() ?? '');
    },
  });
  await waitFor(() => values.length >= expected, {
    timeoutMs: 30_000,
    message: () => `read ${values.length} of ${expected} messages from ${topic}`,
  });
  // Anything beyond the expected count would show up now.
  await sleep(500);
  await consumer.disconnect();
  return values;
}

describe('RateLimitedProducer against a real broker', () => {
  it.each([50, 200, 1000])(
    'holds %i messages/s within ±10% over several seconds',
    async (rate) => {
      const seconds = 4;
      const topic = await createTopic(uniqueName(`rate-${rate}`), 3);
      const { target, batches, warmUp } = await spiedProducer();
      await warmUp(topic);
      const count = rate * seconds + 1;
      const rp = limited(target, { messagesPerSecond: rate, maxBufferedMessages: count });
      await Promise.all(
        Array.from({ length: count }, (_, i) =>
          rp.send({ topic, messages: [{ key: `k${i % 10}`, value: `message-${i}` }] }),
        ),
      );
      const m = achieved(batches, 'messages');
      console.info(
        `[rate] target ${rate} msg/s: ${m.atSend.toFixed(1)} msg/s at send, ${m.atAck.toFixed(1)} msg/s at ack ` +
          `(${m.total} messages in ${m.requests} requests over ${m.seconds.toFixed(2)} s, first request ${m.firstRequest}; ` +
          `error ${(((m.atSend - rate) / rate) * 100).toFixed(2)}% / ${(((m.atAck - rate) / rate) * 100).toFixed(2)}%)`,
      );
      expect(m.seconds).toBeGreaterThan(seconds * 0.9);
      expect(m.atSend).toBeGreaterThan(rate * 0.9);
      expect(m.atSend).toBeLessThan(rate * 1.1);
      expect(m.atAck).toBeGreaterThan(rate * 0.9);
      expect(m.atAck).toBeLessThan(rate * 1.1);
      expect(await totalEnd(topic)).toBe(count + 1);
    },
    60_000,
  );

  it('holds a byte rate within ±10% with messages of mixed sizes', async () => {
    const rate = 40_000;
    const topic = await createTopic(uniqueName('bytes'), 3);
    const { target, batches, warmUp } = await spiedProducer();
    await warmUp(topic);
    const rp = limited(target, { bytesPerSecond: rate, maxBatchBytes: 64 * 1024 });
    // Deterministic mixed sizes from 10 bytes to 6 kB, with keys and headers, about 4 s worth.
    const messages: Message[] = [];
    let total = 0;
    for (let i = 0; total < rate * 4; i += 1) {
      const size = [10, 6000, 300, 2500, 50, 4000, 1200][i % 7] ?? 100;
      const message: Message = {
        key: `key-${i}`,
        value: Buffer.alloc(size, i % 256),
        headers: { 'trace-id': `t${i}`, tags: ['a', 'bb'] },
      };
      total += bytesOf(message);
      messages.push(message);
    }
    await Promise.all(messages.map((message) => rp.send({ topic, messages: [message] })));
    const b = achieved(batches, 'bytes');
    console.info(
      `[rate] target ${rate} B/s: ${b.atSend.toFixed(0)} B/s at send, ${b.atAck.toFixed(0)} B/s at ack ` +
        `(${b.total} bytes, ${messages.length} messages in ${b.requests} requests over ${b.seconds.toFixed(2)} s, ` +
        `first request ${b.firstRequest} B; ` +
        `error ${(((b.atSend - rate) / rate) * 100).toFixed(2)}% / ${(((b.atAck - rate) / rate) * 100).toFixed(2)}%)`,
    );
    expect(b.total).toBe(total);
    expect(b.atSend).toBeGreaterThan(rate * 0.9);
    expect(b.atSend).toBeLessThan(rate * 1.1);
    expect(b.atAck).toBeGreaterThan(rate * 0.9);
    expect(b.atAck).toBeLessThan(rate * 1.1);
    expect(await totalEnd(topic)).toBe(messages.length + 1);
  }, 60_000);

  it('rejects after maxBlockMs when the buffer is full, and loses nothing it accepted', async () => {
    const topic = await createTopic(uniqueName('block'), 1);
    const { target } = await spiedProducer();
    const rp = limited(target, { messagesPerSecond: 1, maxBufferedMessages: 3, maxBlockMs: 300 });
    const full: ProducerBufferFullEvent[] = [];
    rp.on('producer.buffer-full', (e) => full.push(e));

    const accepted = [rp.send({ topic, messages: [{ value: 'v1' }] })];
    // v1 goes at once; v2..v4 then fill the buffer (one message per second).
    await waitFor(() => rp.bufferedMessages === 0, {
      timeoutMs: 5000,
      message: 'v1 handed to KafkaJS',
    });
    for (const v of ['v2', 'v3', 'v4']) accepted.push(rp.send({ topic, messages: [{ value: v }] }));
    expect(rp.bufferedMessages).toBe(3);

    const started = performance.now();
    const rejected = await rp.send({ topic, messages: [{ value: 'v5' }] }).then(
      () => undefined,
      (error: unknown) => error,
    );
    const waited = performance.now() - started;
    expect(rejected).toBeInstanceOf(ProducerBufferFullError);
    expect(rejected).toMatchObject({ code: 'ERR_PRODUCER_BUFFER_FULL' });
    expect(waited).toBeGreaterThanOrEqual(295);
    expect(waited).toBeLessThan(900);
    expect(full).toHaveLength(1);
    expect(full[0]).toMatchObject({ bufferedMessages: 3, blocking: true });

    await rp.flush();
    const results = await Promise.all(accepted);
    expect(results.every((r) => r.length > 0 && r[0]?.errorCode === 0)).toBe(true);
    expect(await readValues(topic, 4)).toEqual(['v1', 'v2', 'v3', 'v4']);
  }, 60_000);

  it('an aborted send still in the buffer or blocked never reaches the broker; the others do', async () => {
    const topic = await createTopic(uniqueName('abort'), 1);
    const { target } = await spiedProducer();
    // One message a second and room for two: the sends after the first wait in the buffer or outside it.
    const rp = limited(target, { messagesPerSecond: 1, maxBufferedMessages: 2 });
    const first = rp.send({ topic, messages: [{ value: 'first' }] });
    await waitFor(() => rp.bufferedMessages === 0, { timeoutMs: 5000, message: 'first sent' });
    const buffered = new AbortController();
    const blocked = new AbortController();
    const doomed = rp.send({ topic, messages: [{ value: 'aborted-in-buffer' }] }, buffered);
    const kept = rp.send({ topic, messages: [{ value: 'kept' }] });
    const doomedToo = rp.send({ topic, messages: [{ value: 'aborted-while-blocked' }] }, blocked);
    const last = rp.send({ topic, messages: [{ value: 'last' }] });
    expect(rp.bufferedMessages).toBe(2);
    expect(rp.blockedSends).toBe(2);
    buffered.abort(new Error('no longer wanted'));
    blocked.abort(new Error('caller left'));
    await expect(doomed).rejects.toThrow('no longer wanted');
    await expect(doomedToo).rejects.toThrow('caller left');
    await Promise.all([first, kept, last]);
    expect(await readValues(topic, 3)).toEqual(['first', 'kept', 'last']);
    expect(await totalEnd(topic)).toBe(3);
  }, 60_000);

  it('an `await using` scope closes the producer: delivered, then disconnected', async () => {
    const topic = await createTopic(uniqueName('dispose'), 1);
    const producer = newProducer();
    await producer.connect();
    const disconnected = new Promise<void>((resolve) => {
      producer.on(producer.events.DISCONNECT, () => resolve());
    });
    let kept: RateLimitedProducer | undefined;
    {
      await using rp = new RateLimitedProducer(producer, { messagesPerSecond: 20 });
      kept = rp;
      for (let i = 0; i < 10; i += 1) void rp.send({ topic, messages: [{ value: `m${i}` }] });
      expect(rp.pendingSends).toBe(10);
    }
    expect(kept.state).toBe('closed');
    await disconnected;
    expect(await totalEnd(topic)).toBe(10);
  }, 60_000);

  it('slows down as a consumer group falls behind, stops at critical, and resumes as the lag drains', async () => {
    const WARNING = 50;
    const CRITICAL = 150;
    const rate = 100;
    const topic = await createTopic(uniqueName('lag'), 1);
    const groupId = uniqueName('lag-group');

    // The group that reads what we produce: slow at first (about 20 msg/s).
    let consumerDelayMs = 50;
    const consumer = newConsumer(groupId);
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    let joined = false;
    consumer.on(consumer.events.GROUP_JOIN, () => {
      joined = true;
    });
    await consumer.run({
      autoCommitInterval: 200,
      eachMessage: async () => {
        if (consumerDelayMs > 0) await sleep(consumerDelayMs);
      },
    });
    await waitFor(() => joined, { timeoutMs: 30_000, message: 'consumer joined its group' });

    // The lag signal, computed with the admin API: end offsets minus committed offsets.
    // Critical is sticky until the lag is back under the warning mark (hysteresis).
    let status: LagStatus = 'ok';
    let lastLag = 0;
    const lagStatus = async (): Promise<LagStatus> => {
      const [ends, committed] = await Promise.all([
        endOffsets(topic),
        committedOffsets(groupId, topic),
      ]);
      let lag = 0;
      for (const [partition, end] of ends) lag += end - (committed.get(partition) ?? 0);
      lastLag = lag;
      if (lag >= CRITICAL) status = 'critical';
      else if (status !== 'critical' || lag < WARNING) status = lag >= WARNING ? 'warning' : 'ok';
      return status;
    };

    const { target, batches } = await spiedProducer();
    const rp = limited(target, {
      messagesPerSecond: rate,
      maxBlockMs: 500,
      lagSignal: { status: lagStatus, intervalMs: 200 },
    });
    const throttled: (ProducerThrottledEvent & { at: number })[] = [];
    rp.on('producer.throttled', (e) => throttled.push({ ...e, at: performance.now() }));

    // Ten callers producing as fast as the producer lets them.
    let running = true;
    let stoppedErrors = 0;
    const workers = Array.from({ length: 10 }, async (_, w) => {
      for (let i = 0; running; i += 1) {
        try {
          await rp.send({ topic, messages: [{ value: `w${w}-${i}` }] });
        } catch (error) {
          if ((error as { code?: string }).code !== 'ERR_PRODUCER_STOPPED') throw error;
          stoppedErrors += 1;
        }
      }
    });

    const atStatus = (s: LagStatus) => throttled.find((e) => e.lagStatus === s);
    await waitFor(() => atStatus('critical'), {
      timeoutMs: 30_000,
      message: () =>
        `critical lag (lag ${lastLag}, events ${throttled.map((e) => e.lagStatus).join(',')})`,
    });
    const warning = atStatus('warning');
    const critical = atStatus('critical');
    expect(warning?.messagesPerSecond).toBe(rate / 2);
    expect(critical?.accepting).toBe(false);

    // Slowed down: while at warning, requests went out at about half the rate.
    const warningPhase = batches.filter(
      (b) =>
        warning !== undefined &&
        critical !== undefined &&
        b.startedAt > warning.at + 200 &&
        b.startedAt <= critical.at,
    );
    const phaseSeconds = ((critical?.at ?? 0) - (warning?.at ?? 0) - 200) / 1000;
    const warningRate = warningPhase.reduce((n, b) => n + b.messages, 0) / phaseSeconds;
    console.info(
      `[lag] warning phase: ${warningRate.toFixed(1)} msg/s over ${phaseSeconds.toFixed(2)} s (target ${rate / 2})`,
    );
    expect(warningRate).toBeGreaterThan((rate / 2) * 0.75);
    expect(warningRate).toBeLessThan((rate / 2) * 1.25);

    // Stopped: after what was buffered is delivered, nothing more reaches the topic.
    await sleep(500);
    const endWhileStopped = await totalEnd(topic);
    await sleep(1000);
    expect(rp.lagStatus).toBe('critical');
    expect(await totalEnd(topic)).toBe(endWhileStopped);
    expect(stoppedErrors).toBeGreaterThan(0);

    // The consumer speeds up, the lag drains, the producer resumes.
    consumerDelayMs = 0;
    await waitFor(
      () => throttled.some((e) => e.lagStatus === 'ok' && e.previousLagStatus === 'critical'),
      {
        timeoutMs: 30_000,
        message: () => `lag drained (lag ${lastLag})`,
      },
    );
    await waitFor(async () => (await totalEnd(topic)) > endWhileStopped + 20, {
      timeoutMs: 10_000,
      message: 'producing resumed',
    });
    const sequence = throttled.map((e) => e.lagStatus);
    console.info(
      `[lag] statuses: ${sequence.join(' -> ')}; ${stoppedErrors} sends refused while critical`,
    );
    expect(sequence.slice(0, 3)).toEqual(['warning', 'critical', 'ok']);

    running = false;
    await Promise.all(workers);
    await rp.close();
    await consumer.disconnect();
  }, 90_000);
});
