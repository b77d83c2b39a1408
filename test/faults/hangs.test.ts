// Fault case 6, hangs and odd throws: handlers that never settle (one honours
// its abort signal, one ignores it, one rejects long after its timeout),
// handlers that throw values that are not Errors (strings, undefined, null,
// numbers, plain, prototype-less, circular and hostile objects), and handlers
// that call the consumer's own pause/resume/close from inside. Timeouts must
// fire, the consumer must move on (dead-lettering what kept failing, with the
// reason), and no rejection or exception may escape to the process: the test
// fails on the first one.

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
  createTopic,
  disconnectAll,
  endOffsets,
  committedOffsets,
  expectCommittedAtEnd,
  getProducer,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import { Ledger, offsetId } from '../helpers/ledger.js';

const trap = trapUnhandled();
const consumers: BackpressureConsumer[] = [];

afterAll(async () => {
  await Promise.all(consumers.map((c) => c.close({ drainTimeoutMs: 500 })));
  await disconnectAll();
  trap.dispose();
});

const circular: Record<string, unknown> = { name: 'circular' };
circular['self'] = circular;

/** What each kind of message makes the handler throw (or return). */
const THROWS: Record<string, () => unknown> = {
  'throw-string': () => 'plain string',
  'throw-undefined': () => undefined,
  'throw-null': () => null,
  'throw-number': () => 42,
  'throw-object': () => ({ code: 'E_DOWNSTREAM', status: 503 }),
  'throw-bare-object': () => Object.create(null) as object,
  'throw-circular': () => circular,
  'throw-hostile': () =>
    new Proxy(
      {},
      {
        get() {
          throw new Error('property access trapped');
        },
      },
    ),
  'throw-bad-tojson': () => ({
    toJSON() {
      throw new Error('toJSON failed');
    },
  }),
};
/** Kinds that fail every attempt: dead-lettered once their attempts are used. */
const FAILING = ['hang', 'hang-ignore-signal', 'hang-reject-late', ...Object.keys(THROWS)];
const KINDS = [...FAILING, 'reject-undefined', 'sync-throw-string', 'pause-self', 'pause-throw'];

describe('fault: hangs, non-Error throws, pause/close from inside', () => {
  it(
    'timeouts fire, odd throws are dead-lettered with a reason, self-pause/close work, nothing escapes',
    { timeout: 540_000 },
    async () => {
      const started = Date.now();
      const topic = uniqueName('hangs');
      const groupId = uniqueName('g-hangs');
      await createTopic(topic, 2);
      await createTopic(`${topic}.dlq`, 1);
      // Two partitions: every odd kind twice in each, between healthy messages,
      // and on partition 0 near the end, a handler that closes its own consumer.
      const messages: { key: string; value: string; partition: number }[] = [];
      for (const partition of [0, 1]) {
        for (let round = 0; round < 2; round += 1) {
          for (const kind of KINDS) {
            for (let i = 0; i < 5; i += 1)
              messages.push({
                key: `k${i}`,
                value: `ok-${partition}-${round}-${kind}-${i}`,
                partition,
              });
            messages.push({ key: kind, value: kind, partition });
          }
        }
      }
      messages.push({ key: 'close', value: 'close-self', partition: 0 });
      for (let i = 0; i < 50; i += 1)
        messages.push({ key: `k${i}`, value: `ok-after-${i}`, partition: i % 2 });
      await produceMessages(topic, messages);

      const ledger = new Ledger('hangs');
      let closedFromInside: Promise<void> | undefined;
      let closeReturnedMs: number | undefined;
      let pausesFromInside = 0;
      let abortsHonoured = 0;
      const retries = new Map<string, number>();

      /** Handled or dead-lettered by the first member: what it may leave uncommitted. */
      const doneByFirst = new Set<string>();
      const makeConsumer = () => {
        const consumer: BackpressureConsumer = new BackpressureConsumer(faultConsumer(groupId), {
          topics: [topic],
          fromBeginning: true,
          ordering: 'key',
          concurrency: 8,
          handlerTimeoutMs: 300,
          commitIntervalMs: 100,
          closeDrainTimeoutMs: 1000,
          retry: { maxAttempts: 2, initialDelayMs: 50, maxDelayMs: 200 },
          deadLetter: { producer: ledgerProducer },
          handler: async (message, { signal }) => {
            const value = message.value!.toString();
            const id = offsetId(message.partition, message.offset);
            switch (value) {
              case 'hang':
                return new Promise<void>((_, reject) =>
                  signal.addEventListener('abort', () => {
                    abortsHonoured += 1;
                    reject(signal.reason);
                  }),
                );
              case 'hang-ignore-signal':
                return new Promise<void>(() => undefined);
              case 'hang-reject-late':
                // Rejects well after the timeout gave up on it.
                return new Promise<void>((_, reject) =>
                  setTimeout(() => reject(new Error('too late')), 1500),
                );
              case 'reject-undefined':
                // Fails once with `undefined`, then succeeds.
                if ((retries.get(id) ?? 0) === 0) {
                  retries.set(id, 1);
                  return Promise.reject(undefined);
                }
                break;
              case 'sync-throw-string':
                if ((retries.get(id) ?? 0) === 0) {
                  retries.set(id, 1);
                  throw 'thrown synchronously';
                }
                break;
              case 'pause-self':
                pausesFromInside += 1;
                consumer.pause();
                setTimeout(() => consumer.resume(), 200);
                break;
              case 'pause-throw':
                // Pausing and then throwing redelivered the batch in plain
                // KafkaJS (kafkajs#1376); here the pause holds and the error
                // dead-letters the message.
                pausesFromInside += 1;
                consumer.pause({ topic: message.topic, partition: message.partition });
                setTimeout(
                  () => consumer.resume({ topic: message.topic, partition: message.partition }),
                  200,
                );
                throw new NonRetriableError('paused, then failed');
              case 'close-self':
                if (closedFromInside === undefined) {
                  const closeStarted = Date.now();
                  closedFromInside = consumer.close().then(() => {
                    closeReturnedMs = Date.now() - closeStarted;
                  });
                  // Awaited from inside: the handler is part of what close() drains.
                  await closedFromInside;
                  return;
                }
                break;
              default: {
                const make = THROWS[value];
                if (make) throw make();
              }
            }
            ledger.handled(id);
            if (consumer === consumers[0]) doneByFirst.add(id);
          },
        });
        consumers.push(consumer);
        return consumer;
      };
      const ledgerProducer = await getProducer();

      const first = makeConsumer();
      const errors: string[] = [];
      const events = new Map<string, number>();
      const watch = (consumer: BackpressureConsumer, name: string) => {
        for (const event of [
          'message.retry',
          'dlq.routed',
          'circuit.open',
          'circuit.closed',
        ] as const)
          consumer.on(event, () => events.set(event, (events.get(event) ?? 0) + 1));
        consumer.on('consumer.error', (e) => errors.push(`${name}:${e.during}:${e.error.name}`));
      };
      const diagnose = (consumer: BackpressureConsumer) =>
        `${ledger.summary()}; circuit ${consumer.circuitState}; in flight ${consumer.inFlight}; ` +
        `events ${[...events].map(([k, n]) => `${k}=${n}`).join(' ')}; ` +
        `partitions ${JSON.stringify(consumer.partitions())}`;
      watch(first, 'first');
      first.on('dlq.routed', (e) => doneByFirst.add(offsetId(e.partition, e.offset)));
      await first.start();
      // Since the rebuilt core this takes ~110 s, not ~25 s: the circuit opens
      // again and again on the failing kinds, and each open waits out
      // resetTimeoutMs. That is the failure rule's business (issue 14); the
      // limits here leave room for it on a loaded machine.
      await waitFor(() => closedFromInside !== undefined, {
        timeoutMs: 240_000,
        message: () => `never reached the close-self message: ${diagnose(first)}`,
      });
      await waitFor(() => first.state === 'closed', {
        timeoutMs: 30_000,
        message: 'close() from inside a handler never finished',
      });
      expect(closeReturnedMs).toBeDefined();
      // What the first member finished beyond its last commit comes again:
      // with a message held (retried, timing out) at the commit position, that
      // can be more than was in flight at any moment.
      const committedAtHandover = await committedOffsets(groupId, topic);
      const uncommittedDone = [...doneByFirst].filter((id) => {
        const [p, o] = id.split(':').map(Number) as [number, number];
        return o >= (committedAtHandover.get(p) ?? 0);
      }).length;

      // A second member finishes what the first left (close-self included),
      // while the stream goes on: with the circuit breaker on, a message that
      // keeps failing is dead-lettered once another message has succeeded
      // since its first failure (before that, it looks like an outage).
      const second = makeConsumer();
      watch(second, 'second');
      await second.start();
      const original = await endOffsets(topic);
      let streaming = true;
      const stream = (async () => {
        for (let i = 0; streaming; i += 1) {
          await produceMessages(topic, [
            { key: `k${i % 5}`, value: `ok-late-${i}`, partition: 0 },
            { key: `k${i % 5}`, value: `ok-late-${i}`, partition: 1 },
          ]);
          await sleep(100);
        }
      })();
      try {
        await waitFor(
          async () => {
            const committed = await committedOffsets(groupId, topic);
            return [...original].every(([p, end]) => (committed.get(p) ?? 0) >= end);
          },
          {
            timeoutMs: 180_000,
            message: () => `second member did not get past the odd messages: ${diagnose(second)}`,
          },
        );
      } finally {
        streaming = false;
        await stream;
      }
      ledger.expectOffsets(await endOffsets(topic));
      await expectCommittedAtEnd(groupId, topic);
      const failing = messages.filter((m) => FAILING.includes(m.value)).length;
      const letters = await ledgerDeadLetters(ledger, `${topic}.dlq`, failing + 4);
      await second.close();
      await sleep(1600); // let 'hang-reject-late' reject after everything closed
      trap.assertNone();

      const byValue = new Map(letters.map((l) => [l.value!.toString(), l]));
      for (const kind of FAILING) {
        const letter = byValue.get(kind);
        expect(letter, kind).toBeDefined();
        expect(letter!.reason, kind).toBe('attempts-exhausted');
        expect(letter!.errorMessage.length, kind).toBeGreaterThan(0);
      }
      expect(byValue.get('hang')!.errorName).toBe('HandlerTimeoutError');
      expect(byValue.get('hang-ignore-signal')!.errorName).toBe('HandlerTimeoutError');
      expect(byValue.get('throw-string')!.errorMessage).toContain('plain string');
      expect(byValue.get('throw-undefined')!.errorName).toBe('NonErrorThrown');
      expect(byValue.get('pause-throw')!.reason).toBe('non-retriable');
      const allowed = new Set(
        letters
          .filter(
            (l) => FAILING.includes(l.value!.toString()) || l.value!.toString() === 'pause-throw',
          )
          .map((l) => l.id),
      );

      ledger.note('deadLetters', letters.length);
      ledger.note('abortsHonoured', abortsHonoured);
      ledger.note('pausesFromInside', pausesFromInside);
      ledger.note(
        'closeFromInside',
        closeReturnedMs === undefined ? 'never' : `${closeReturnedMs}ms`,
      );
      ledger.note('errors', errors.length);
      ledger.note('escaped', trap.escaped.length);
      ledger.note('uncommittedAtHandover', uncommittedDone);
      ledger.note('time', seconds(Date.now() - started));
      ledger.print();
      // Redelivery after the close from inside: at most what the first member held.
      ledger.assertComplete({
        maxDuplicates: uncommittedDone,
        mayDeadLetter: (id) => allowed.has(id),
      });
    },
  );
});
