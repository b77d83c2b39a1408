// Fault case 3, rebalance storm: members join and leave the group every
// couple of seconds while a key-ordered stream is processed. Nothing may be
// lost; within every member's run of a partition (from one assignment to the
// next) each key's messages start in order; duplicates stay within what the
// rebalances could have had in flight.

import { afterAll, describe, expect, it } from 'vitest';
import { BackpressureConsumer } from '../../src/index.js';
import { between, faultConsumer, seconds, sleep, trapUnhandled } from '../helpers/faults.js';
import {
  createTopic,
  disconnectAll,
  endOffsets,
  expectCommittedAtEnd,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import { Ledger, offsetId } from '../helpers/ledger.js';

const MESSAGES = 12_000;
const KEYS = 200;
const PARTITIONS = 6;
const MAX_IN_FLIGHT = 200;
const STORM_MS = Number(process.env['STORM_MS'] ?? 24_000);
const CHANGE_EVERY_MS = 2000;
const MAX_MEMBERS = 4;

const members = new Set<Member>();
const trap = trapUnhandled();

afterAll(async () => {
  await Promise.all([...members].map((m) => m.consumer.close({ drainTimeoutMs: 1000 })));
  await disconnectAll();
  trap.dispose();
});

interface Member {
  readonly name: string;
  readonly consumer: BackpressureConsumer;
  /** Bumped on every assignment: a run of a partition lasts one epoch. */
  epoch: number;
}

describe('fault: rebalance storm', () => {
  it('members join and leave every couple of seconds: nothing lost, per-key order per run, duplicates bounded', async () => {
    const started = Date.now();
    const topic = uniqueName('storm');
    const groupId = uniqueName('g-storm');
    await createTopic(topic, PARTITIONS);
    const ledger = new Ledger('rebalance-storm');

    // Per member, epoch, partition and key: the last sequence number started.
    const lastStarted = new Map<string, number>();
    const orderViolations: string[] = [];
    const rebalances: string[] = [];
    const errors: string[] = [];
    let memberCount = 0;
    let maxDuplicatesAllowed = 0;

    const join = async () => {
      const name = `m${++memberCount}`;
      const member: Member = {
        name,
        epoch: 0,
        consumer: new BackpressureConsumer(faultConsumer(groupId), {
          topics: [topic],
          fromBeginning: true,
          ordering: 'key',
          concurrency: 16,
          maxInFlight: MAX_IN_FLIGHT,
          commitIntervalMs: 200,
          rebalanceDrainTimeoutMs: 3000,
          handler: async (message) => {
            const [key, seq] = message.value!.toString().split(':') as [string, string];
            const run = `${name}/${member.epoch}/${message.partition}/${key}`;
            const previous = lastStarted.get(run);
            if (previous !== undefined && Number(seq) <= previous)
              orderViolations.push(`${run}: ${seq} after ${previous}`);
            lastStarted.set(run, Number(seq));
            await sleep(Math.random() * 4);
            ledger.handled(offsetId(message.partition, message.offset));
          },
        }),
      };
      member.consumer.on('group.rebalance', (e) => {
        if (e.phase !== 'assigned') return;
        member.epoch += 1;
        rebalances.push(`${name}:${e.assigned.map((p) => p.partition).join('')}`);
      });
      member.consumer.on('consumer.error', (e) =>
        errors.push(`${name}:${e.during}:${e.error.name}`),
      );
      members.add(member);
      await member.consumer.start();
    };
    const leave = async () => {
      // Closing during start() is the close case's business (close.test.ts).
      const list = [...members].filter((m) => m.consumer.state === 'running');
      if (list.length === 0) return;
      const member = list[between(0, list.length - 1)]!;
      members.delete(member);
      await member.consumer.close({ drainTimeoutMs: 5000 });
    };

    // A stream with per-key sequence numbers, produced while the storm runs.
    const production = (async () => {
      const seq = new Array<number>(KEYS).fill(0);
      for (let i = 0; i < MESSAGES; i += 500) {
        const chunk = Array.from({ length: 500 }, (_, j) => {
          const k = (i + j) % KEYS;
          return { key: `k${k}`, value: `k${k}:${seq[k]!++}` };
        });
        await produceMessages(topic, chunk);
        await sleep(STORM_MS / (MESSAGES / 500));
      }
    })();

    await join();
    await join();
    let changes = 0;
    const stormEnd = Date.now() + STORM_MS;
    while (Date.now() < stormEnd) {
      await sleep(between(CHANGE_EVERY_MS / 2, CHANGE_EVERY_MS * 1.5));
      const size = members.size;
      const running = [...members].filter((m) => m.consumer.state === 'running').length;
      const grow = running <= 1 || (size < MAX_MEMBERS && Math.random() < 0.5);
      // Every member that owns partitions may lose what it had in flight.
      maxDuplicatesAllowed += size * MAX_IN_FLIGHT;
      changes += 1;
      // Joins and leaves are not awaited one by one: the next change may come
      // while the group is still rebalancing from this one.
      const change = grow ? join() : leave();
      change.catch((error: unknown) => errors.push(`${grow ? 'join' : 'leave'}:${String(error)}`));
    }
    await production;
    ledger.expectOffsets(await endOffsets(topic));
    await waitFor(() => ledger.isComplete(), {
      timeoutMs: 120_000,
      message: () =>
        `not all handled after the storm: ${ledger.summary()} errors ${errors.join(',')}`,
    });
    await expectCommittedAtEnd(groupId, topic);
    const survivors = members.size;
    await Promise.all([...members].map((m) => m.consumer.close()));

    ledger.note('changes', changes);
    ledger.note('members', memberCount);
    ledger.note('survivors', survivors);
    ledger.note('assignments', rebalances.length);
    ledger.note('orderViolations', orderViolations.length);
    ledger.note('bound', maxDuplicatesAllowed);
    ledger.note('errors', summarize(errors));
    ledger.note('time', seconds(Date.now() - started));
    ledger.print();
    expect(orderViolations.slice(0, 10)).toEqual([]);
    ledger.assertComplete({ maxDuplicates: maxDuplicatesAllowed });
    trap.assertNone();
  });
});

/** `a`, `a`, `b` -> `ax2,b`: the kinds of errors, briefly. */
function summarize(list: readonly string[]): string {
  const counts = new Map<string, number>();
  for (const item of list) {
    const kind = item.replace(/^m\d+:/, '');
    counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => (n > 1 ? `${k}x${n}` : k)).join(',') || 'none';
}
