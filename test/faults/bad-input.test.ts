// Fault case 7, bad input: null keys and values (tombstones), empty keys and
// values, values far beyond maxInFlightBytes, binary garbage that the
// user's deserializer rejects (with an Error, and with a non-Error), and
// headers of odd shapes (empty and unicode names, repeated names, binary
// values that are not UTF-8, hundreds of headers, a large one). Each message
// is either handled or dead-lettered with a reason, the dead letters keep
// the original bytes and headers, and nothing stalls: the group commits to
// the end.

import { randomBytes } from 'node:crypto';
import type { IHeaders, Message } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { BackpressureConsumer } from '../../src/index.js';
import { faultConsumer, ledgerDeadLetters, seconds, trapUnhandled } from '../helpers/faults.js';
import {
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

const MAX_IN_FLIGHT_BYTES = 64 * 1024;
const trap = trapUnhandled();
let close: (() => Promise<void>) | undefined;

afterAll(async () => {
  await close?.();
  await disconnectAll();
  trap.dispose();
});

interface Payload {
  readonly n: number;
  readonly pad?: string;
}

/** Bytes that are not valid UTF-8 (0xff never appears in UTF-8) and not JSON. */
function garbage(size: number): Buffer {
  const bytes = randomBytes(size);
  bytes[0] = 0xff;
  return bytes;
}

const oddHeaders = (i: number): IHeaders => ({
  '': 'empty name',
  'ünïcødé-名前': 'unicode name',
  repeated: ['first', Buffer.from('second'), 'third'],
  binary: Buffer.from([0xff, 0xfe, 0x00, 0x80, i & 0xff]),
  empty: '',
  'empty-buffer': Buffer.alloc(0),
  large: 'h'.repeat(50_000),
  ...Object.fromEntries(Array.from({ length: 200 }, (_, h) => [`h-${h}`, `${h}`])),
});

describe('fault: bad input', () => {
  it('null, empty, huge, undeserializable and oddly-headed messages: handled or dead-lettered with a reason, never a stall', async () => {
    const started = Date.now();
    const topic = uniqueName('bad-input');
    const groupId = uniqueName('g-bad-input');
    await createTopic(topic, 2);
    await createTopic(`${topic}.dlq`, 1);

    // What each produced message is, by its index; written in small groups
    // so the huge values each go in a request of their own (the broker takes
    // at most about 1 MB per record batch).
    const kinds: string[] = [];
    const groups: Message[][] = [];
    const add = (kind: string, message: Message) => {
      kinds.push(kind);
      const partition = kinds.length % 2;
      const group = groups.at(-1);
      const big = (message.value?.length ?? 0) > 100_000;
      const entry = { ...message, partition };
      if (!group || big || group.length >= 50) groups.push([entry]);
      else group.push(entry);
      if (big) groups.push([]);
    };
    let n = 0;
    const json = (extra: Partial<Payload> = {}) => JSON.stringify({ n: n++, ...extra });
    for (let round = 0; round < 5; round += 1) {
      add('json', { key: `k${round}`, value: json() });
      add('tombstone', { key: `k${round}`, value: null });
      add('null-key', { key: null, value: json() });
      add('null-both', { key: null, value: null });
      add('empty-value', { key: `k${round}`, value: Buffer.alloc(0) });
      add('empty-key', { key: '', value: json() });
      add('huge', { key: `k${round}`, value: json({ pad: 'x'.repeat(300_000) }) });
      add('garbage', { key: `k${round}`, value: garbage(64) });
      add('garbage-odd-headers', { key: null, value: garbage(16), headers: oddHeaders(round) });
      add('json-odd-headers', { key: `k${round}`, value: json(), headers: oddHeaders(round) });
      add('garbage-huge', { key: `k${round}`, value: garbage(200_000) });
      add('reject-nonerror', { key: 'x', value: json(), headers: { 'x-reject': 'non-error' } });
      for (let i = 0; i < 20; i += 1) add('json', { key: `k${i}`, value: json() });
    }
    add('near-limit', { key: 'big', value: json({ pad: 'y'.repeat(900_000) }) });
    for (const group of groups) if (group.length > 0) await produceMessages(topic, group);
    const ends = await endOffsets(topic);

    const ledger = new Ledger('bad-input');
    const payloads = new Map<string, Payload | null>();
    const peakBytesWithHuge: number[] = [];
    const consumer = new BackpressureConsumer<Payload | null>(faultConsumer(groupId), {
      topics: [topic],
      fromBeginning: true,
      ordering: 'key',
      concurrency: 8,
      maxInFlightBytes: MAX_IN_FLIGHT_BYTES,
      commitIntervalMs: 100,
      deadLetter: { producer: await getProducer() },
      deserialize: async (message) => {
        if (message.headers?.['x-reject']?.toString() === 'non-error') {
          // A deserializer may reject with anything.
          return Promise.reject({ reason: 'not an Error' });
        }
        if (message.value === null || message.value.length === 0) return null;
        return JSON.parse(message.value.toString('utf8')) as Payload;
      },
      handler: (message) => {
        const id = offsetId(message.partition, message.offset);
        if ((message.value?.length ?? 0) > MAX_IN_FLIGHT_BYTES)
          peakBytesWithHuge.push(consumer.inFlight);
        payloads.set(id, message.payload);
        ledger.handled(id);
      },
    });
    close = () => consumer.close({ drainTimeoutMs: 1000 });
    const routed = new Map<string, string>();
    consumer.on('dlq.routed', (e) => routed.set(offsetId(e.partition, e.offset), e.reason));
    await consumer.start();
    ledger.expectOffsets(ends);
    const shouldLetter = kinds.filter((k) => k.startsWith('garbage') || k === 'reject-nonerror');
    await waitFor(() => ledger.accountedCount + routed.size >= kinds.length, {
      timeoutMs: 60_000,
      message: () => `stalled: ${ledger.summary()}, routed ${routed.size}`,
    });
    await expectCommittedAtEnd(groupId, topic);
    const letters = await ledgerDeadLetters(ledger, `${topic}.dlq`, shouldLetter.length);
    await consumer.close();

    // Every dead letter is a message the deserializer rejected, with the reason.
    for (const letter of letters) {
      expect(letter.reason).toBe('deserialization');
      expect(letter.errorName).toMatch(/^(SyntaxError|NonErrorThrown)$/);
    }
    // Odd headers travel with the dead letter unchanged (binary and repeated ones included).
    const odd = letters.filter((l) => l.headers['ünïcødé-名前'] !== undefined);
    expect(odd.length).toBe(5);
    for (const letter of odd) {
      expect(letter.headers['']?.toString()).toBe('empty name');
      const binary = letter.headers['binary'] as Buffer;
      expect([...binary.subarray(0, 4)]).toEqual([0xff, 0xfe, 0x00, 0x80]);
      const repeated = letter.headers['repeated'] as Buffer[];
      expect(repeated.map((b) => b.toString())).toEqual(['first', 'second', 'third']);
      expect(letter.headers['large']?.toString().length).toBe(50_000);
      expect(letter.headers['h-199']?.toString()).toBe('199');
      expect(letter.value!.length).toBe(16);
    }
    const nonError = letters.filter((l) => l.errorName === 'NonErrorThrown');
    expect(nonError).toHaveLength(5);
    expect(nonError[0]!.errorMessage).toContain('not an Error');
    // Tombstones and empty values reached the handler with a null payload.
    const nullPayloads = [...payloads.values()].filter((p) => p === null).length;
    expect(nullPayloads).toBe(
      kinds.filter((k) => /tombstone|null-both|empty-value/.test(k)).length,
    );
    // A value larger than the whole byte bound ran alone.
    expect(peakBytesWithHuge.length).toBeGreaterThan(0);
    expect(Math.max(...peakBytesWithHuge)).toBe(1);
    trap.assertNone();

    const letterIds = new Set(letters.map((l) => l.id));
    ledger.note('kinds', new Set(kinds).size);
    ledger.note('deadLetters', letters.length);
    ledger.note('hugeRanAlone', peakBytesWithHuge.length);
    ledger.note('time', seconds(Date.now() - started));
    ledger.print();
    ledger.assertComplete({
      maxDuplicates: 0,
      mustDeadLetter: letterIds,
      mayDeadLetter: (id, reason) => routed.get(id) === reason && reason === 'deserialization',
    });
    expect(letters).toHaveLength(shouldLetter.length);
  });
});
