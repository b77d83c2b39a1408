// Fault case 4, downstream outage and flapping: the handler's downstream is
// down for a long stretch, then flaps up and down every second, then
// recovers. The circuit must open (every partition pauses, and while it is
// open the handler is only called by the half-open probes), no healthy
// message may be dead-lettered (only the genuinely poison ones are), and
// everything is processed at the end.

import { afterAll, describe, expect, it } from 'vitest';
import { BackpressureConsumer, NonRetriableError } from '../../src/index.js';
import {
  faultConsumer,
  ledgerDeadLetters,
  seconds,
  sleep,
  trapUnhandled,
} from '../helpers/faults.js';
import {
  committedOffsets,
  createTopic,
  disconnectAll,
  endOffsets,
  expectCommittedAtEnd,
  getProducer,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import { Ledger, offsetId } from '../helpers/ledger.js';

const MESSAGES = 6000;
const OUTAGE_MS = Number(process.env['OUTAGE_MS'] ?? 12_000);
const FLAP_MS = Number(process.env['FLAP_MS'] ?? 12_000);
const CONCURRENCY = 8;

const trap = trapUnhandled();
let close: (() => Promise<void>) | undefined;

afterAll(async () => {
  await close?.();
  await disconnectAll();
  trap.dispose();
});

describe('fault: downstream outage and flapping', () => {
  it('long outage, then up/down every second: circuit opens and probes, no healthy message dead-lettered, all processed', async () => {
    const started = Date.now();
    const topic = uniqueName('downstream');
    const groupId = uniqueName('g-downstream');
    await createTopic(topic, 4);
    await createTopic(`${topic}.dlq`, 1);
    await produceMessages(
      topic,
      Array.from({ length: MESSAGES }, (_, i) => ({ key: `k${i % 40}`, value: `m-${i}` })),
    );
    const poison = (value: string) => Number(value.slice(2)) % 200 === 13;
    const ledger = new Ledger('downstream');

    let down = false;
    let phase: 'before' | 'outage' | 'flapping' | 'after' = 'before';
    const calls = { outageAfterOpen: 0, outage: 0, flapping: 0, whileOpen: 0 };
    let running = 0;
    let maxRunningHalfOpen = 0;
    const states: string[] = [];
    let openedDuringOutage = false;
    let halfOpensDuringOutage = 0;
    const pausedOnOpen: number[] = [];
    const consumer = new BackpressureConsumer(faultConsumer(groupId), {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: CONCURRENCY,
      maxInFlight: 400,
      commitIntervalMs: 200,
      retry: { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 1000 },
      circuitBreaker: {
        volumeThreshold: 5,
        errorThresholdPercentage: 50,
        resetTimeoutMs: 1000,
        rollingCountTimeoutMs: 2000,
        rollingCountBuckets: 10,
      },
      deadLetter: { producer: await getProducer() },
      handler: async (message) => {
        if (phase === 'outage') {
          calls.outage += 1;
          if (openedDuringOutage) calls.outageAfterOpen += 1;
        } else if (phase === 'flapping') calls.flapping += 1;
        // The breaker's contract: no call while open, one probe at a time while half-open.
        if (consumer.circuitState === 'open') calls.whileOpen += 1;
        running += 1;
        if (consumer.circuitState === 'half-open')
          maxRunningHalfOpen = Math.max(maxRunningHalfOpen, running);
        try {
          await sleep(2);
          const value = message.value!.toString();
          if (poison(value)) throw new NonRetriableError(`poison ${value}`);
          if (down) throw new Error('downstream unavailable');
          ledger.handled(offsetId(message.partition, message.offset));
        } finally {
          running -= 1;
        }
      },
    });
    close = () => consumer.close({ drainTimeoutMs: 1000 });
    consumer.on('circuit.open', () => {
      states.push('open');
      if (phase === 'outage') openedDuringOutage = true;
      pausedOnOpen.push(
        consumer.partitions().filter((p) => p.paused && p.reasons.includes('circuit')).length,
      );
    });
    consumer.on('circuit.half-open', () => {
      states.push('half');
      if (phase === 'outage' && openedDuringOutage) halfOpensDuringOutage += 1;
    });
    consumer.on('circuit.closed', () => states.push('closed'));
    await consumer.start();

    await waitFor(() => ledger.accountedCount >= 1000, {
      timeoutMs: 60_000,
      message: 'no progress',
    });
    phase = 'outage';
    down = true;
    await sleep(OUTAGE_MS);
    const outageStates = states.length;
    phase = 'flapping';
    const flapEnd = Date.now() + FLAP_MS;
    let flips = 0;
    while (Date.now() < flapEnd) {
      down = !down;
      flips += 1;
      await sleep(1000);
    }
    phase = 'after';
    down = false;
    const upAt = Date.now();

    ledger.expectOffsets(await endOffsets(topic));
    const poisonCount = Array.from({ length: MESSAGES }, (_, i) => `m-${i}`).filter(poison).length;
    await waitFor(() => ledger.accountedCount >= MESSAGES - poisonCount, {
      timeoutMs: 120_000,
      message: () =>
        `not all handled after recovery: ${ledger.summary()} circuit=${consumer.circuitState} ${JSON.stringify(consumer.partitions())}`,
    });
    await expectCommittedAtEnd(groupId, topic);
    const letters = await ledgerDeadLetters(ledger, `${topic}.dlq`, poisonCount);
    const recoveredMs = Date.now() - upAt;
    await consumer.close();

    const poisonIds = new Set(letters.filter((l) => poison(l.value!.toString())).map((l) => l.id));
    ledger.note('outage', seconds(OUTAGE_MS));
    ledger.note('flips', flips);
    ledger.note('circuit', compress(states));
    ledger.note('outageCalls', calls.outage);
    ledger.note('callsAfterOpen', calls.outageAfterOpen);
    ledger.note('callsWhileOpen', calls.whileOpen);
    ledger.note('maxRunningHalfOpen', maxRunningHalfOpen);
    ledger.note('halfOpens', halfOpensDuringOutage);
    ledger.note('flappingCalls', calls.flapping);
    ledger.note('recovered', seconds(recoveredMs));
    ledger.note('time', seconds(Date.now() - started));
    ledger.print();

    // The circuit opened during the outage and paused every partition.
    expect(openedDuringOutage).toBe(true);
    expect(pausedOnOpen[0]).toBe(4);
    expect(states.slice(0, outageStates)).toContain('half');
    // No handler call starts while the circuit is open; while half-open, the
    // probe runs alone.
    expect(calls.whileOpen).toBe(0);
    expect(maxRunningHalfOpen).toBeLessThanOrEqual(1);
    // During the outage the handler saw little more than the probes: what
    // was running or queued for a slot when it opened, and what ran while
    // an uncounted probe had closed it (only-failed messages waiting).
    expect(calls.outageAfterOpen).toBeLessThan(
      halfOpensDuringOutage * (CONCURRENCY + 1) + 2 * CONCURRENCY,
    );
    expect(states.at(-1)).toBe('closed');
    // Only the poison messages were dead-lettered, each once, as non-retriable.
    ledger.assertComplete({
      maxDuplicates: 0,
      mustDeadLetter: poisonIds,
      mayDeadLetter: (id, reason) => poisonIds.has(id) && reason === 'non-retriable',
    });
    expect(poisonIds.size).toBe(poisonCount);
    trap.assertNone();
  });

  it('recovers when the message that opened the circuit keeps failing: probes rotate, the poison is dead-lettered', async () => {
    // Regression: a message whose own failure opened the circuit waited
    // first in line for the half-open state, so it was the probe every
    // time. A message that always fails then kept the circuit from ever
    // closing, and the consumer stalled after the outage had ended.
    const topic = uniqueName('probe');
    const groupId = uniqueName('g-probe');
    await createTopic(topic, 1);
    await createTopic(`${topic}.dlq`, 1);
    // h-0 fails first (the outage), then the poison's failure opens the circuit.
    await produceMessages(topic, [
      { key: 'h-0', value: 'h-0' },
      { key: 'poison', value: 'poison' },
      ...Array.from({ length: 20 }, (_, i) => ({ key: `h-${i + 1}`, value: `h-${i + 1}` })),
    ]);
    let down = true;
    const ledger = new Ledger('probe-rotation');
    const consumer = new BackpressureConsumer(faultConsumer(groupId), {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 1,
      commitIntervalMs: 100,
      retry: { maxAttempts: 2, initialDelayMs: 50, maxDelayMs: 100 },
      circuitBreaker: {
        volumeThreshold: 2,
        errorThresholdPercentage: 50,
        resetTimeoutMs: 200,
        rollingCountTimeoutMs: 1000,
        rollingCountBuckets: 10,
      },
      deadLetter: { producer: await getProducer() },
      handler: (message) => {
        const value = message.value!.toString();
        if (value === 'poison') throw new Error('this message always fails');
        if (down) throw new Error('downstream unavailable');
        ledger.handled(offsetId(message.partition, message.offset));
      },
    });
    const opened = { count: 0 };
    consumer.on('circuit.open', () => (opened.count += 1));
    close = () => consumer.close({ drainTimeoutMs: 1000 });
    await consumer.start();
    await waitFor(() => opened.count > 0, { timeoutMs: 30_000, message: 'circuit never opened' });
    await sleep(1000);
    down = false;
    await waitFor(() => ledger.accountedCount === 21, {
      timeoutMs: 30_000,
      message: () =>
        `stalled after the outage: ${ledger.summary()}, circuit ${consumer.circuitState}, opened ${opened.count} times`,
    });
    await expectCommittedAtEnd(groupId, topic);
    ledger.expectOffsets(await endOffsets(topic));
    const [letter] = await ledgerDeadLetters(ledger, `${topic}.dlq`, 1);
    await consumer.close();
    ledger.note('opened', opened.count);
    ledger.print();
    expect(letter!.value!.toString()).toBe('poison');
    ledger.assertComplete({
      maxDuplicates: 0,
      mayDeadLetter: (id, reason) => id === letter!.id && reason === 'attempts-exhausted',
    });
  });

  it('recovers when only messages that always fail are left in flight while the circuit is open', async () => {
    // Regression: with the circuit open nothing new is fetched, so once the
    // messages in flight were all ones that always fail, every half-open
    // probe failed and the circuit never closed: a permanent stall that
    // looked like an outage. A message's failures now count against the
    // downstream only until it has failed once while the circuit was not
    // closed; its next probe closes the circuit, fetching resumes, fresh
    // messages succeed and the poison ones are dead-lettered.
    const topic = uniqueName('only-poison');
    const groupId = uniqueName('g-only-poison');
    await createTopic(topic, 1);
    await createTopic(`${topic}.dlq`, 1);
    await produceMessages(
      topic,
      Array.from({ length: 4 }, (_, i) => ({ key: `p-${i}`, value: `poison-${i}` })),
    );
    for (let b = 0; b < 10; b += 1) {
      await produceMessages(
        topic,
        Array.from({ length: 10 }, (_, i) => ({ key: `h-${i}`, value: `h-${b * 10 + i}` })),
      );
    }
    const ledger = new Ledger('only-poison');
    const consumer = new BackpressureConsumer(
      faultConsumer(groupId, { maxBytesPerPartition: 1024, maxBytes: 1024 }),
      {
        topics: [topic],
        fromBeginning: true,
        ordering: 'key',
        concurrency: 4,
        maxInFlight: 6,
        commitIntervalMs: 100,
        retry: { maxAttempts: 2, initialDelayMs: 50, maxDelayMs: 100 },
        circuitBreaker: {
          volumeThreshold: 3,
          errorThresholdPercentage: 50,
          resetTimeoutMs: 200,
          rollingCountTimeoutMs: 1000,
          rollingCountBuckets: 10,
        },
        deadLetter: { producer: await getProducer() },
        handler: (message) => {
          const value = message.value!.toString();
          if (value.startsWith('poison')) throw new Error(`${value} always fails`);
          ledger.handled(offsetId(message.partition, message.offset));
        },
      },
    );
    const opened = { count: 0 };
    consumer.on('circuit.open', () => (opened.count += 1));
    close = () => consumer.close({ drainTimeoutMs: 1000 });
    await consumer.start();
    const ends = await endOffsets(topic);
    ledger.expectOffsets(ends);
    await waitFor(async () => (await committedOffsets(groupId, topic)).get(0) === ends.get(0), {
      timeoutMs: 30_000,
      message: () =>
        `stalled: ${ledger.summary()}, circuit ${consumer.circuitState}, opened ${opened.count} times, ` +
        `in flight ${consumer.inFlight}`,
    });
    const letters = await ledgerDeadLetters(ledger, `${topic}.dlq`, 4);
    await consumer.close();
    ledger.note('opened', opened.count);
    ledger.print();
    const poisonIds = new Set(
      letters.filter((l) => l.value!.toString().startsWith('poison')).map((l) => l.id),
    );
    expect(poisonIds.size).toBe(4);
    ledger.assertComplete({
      maxDuplicates: 0,
      mayDeadLetter: (id, reason) => poisonIds.has(id) && reason === 'attempts-exhausted',
    });
  });
});

/** `open half open half closed` -> `open>half x2>closed`, keeping the line short. */
function compress(states: readonly string[]): string {
  const out: string[] = [];
  for (let i = 0; i < states.length;) {
    let j = i;
    while (j + 2 < states.length && states[j + 2] === states[i] && states[j + 1] === states[i + 1])
      j += 2;
    const repeats = (j - i) / 2 + 1;
    if (repeats > 1) {
      out.push(`(${states[i]}>${states[i + 1]})x${repeats}`);
      i = j + 2;
    } else {
      out.push(states[i]!);
      i += 1;
    }
  }
  return out.join('>');
}
