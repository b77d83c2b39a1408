// Fault case 10, close under load: in a child process, a consumer is closed
// at random moments with thousands of messages in flight, round after round
// (some rounds while start() is still joining). Every close() returns
// within its drain timeout plus the commit and disconnect, commits what
// finished and nothing that did not, leaves the group; nothing is lost over
// all rounds; and the process exits by itself at the end (no handle left
// open).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BackpressureConsumer } from '../../src/index.js';
import { faultConsumer, runChild, seconds, sleep, type Child } from '../helpers/faults.js';
import {
  createTopic,
  disconnectAll,
  endOffsets,
  getAdmin,
  produceMessages,
  uniqueName,
} from '../helpers/kafka.js';
import { Ledger } from '../helpers/ledger.js';

const ROUNDS = Number(process.env['CLOSE_ROUNDS'] ?? 8);
const MESSAGES = 20_000;
const MAX_IN_FLIGHT = 2000;
/** Room for the final commit and KafkaJS's disconnect (LeaveGroup) after the drain timeout. */
const CLOSE_GRACE_MS = 10_000;

const dir = mkdtempSync(join(tmpdir(), 'bp-close-'));
let child: Child | undefined;

afterAll(async () => {
  await child?.kill();
  await disconnectAll();
  rmSync(dir, { recursive: true, force: true });
});

interface Round {
  readonly round: number;
  readonly duringStart: boolean;
  readonly startError: string;
  readonly drainTimeoutMs: number;
  readonly closeMs: number;
  readonly inFlightAtClose: number;
  readonly state: string;
  readonly problems: readonly string[];
}

describe('fault: close under load', () => {
  it(`close() at random moments with thousands in flight, ${ROUNDS} times: on time, commits what finished, no handle left`, async () => {
    const started = Date.now();
    const topic = uniqueName('close-load');
    const groupId = uniqueName('g-close-load');
    const file = join(dir, 'ledger.log');
    await createTopic(topic, 4);
    for (let i = 0; i < MESSAGES; i += 5000) {
      await produceMessages(
        topic,
        Array.from({ length: 5000 }, (_, j) => ({ key: `k${(i + j) % 500}`, value: `${i + j}` })),
      );
    }
    const ledger = new Ledger('close');
    ledger.expectOffsets(await endOffsets(topic));

    child = runChild(new URL('./children/close-rounds.ts', import.meta.url), {
      FAULT_TOPIC: topic,
      FAULT_GROUP: groupId,
      FAULT_ROUNDS: String(ROUNDS),
      FAULT_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
      FAULT_LEDGER: file,
    });
    await child.waitForLine((line) => line === 'done', ROUNDS * 20_000 + 120_000);
    const doneAt = Date.now();
    const exit = await Promise.race([child.exited, sleep(20_000).then(() => 'still running')]);
    const exitMs = Date.now() - doneAt;
    expect(exit, `the process did not exit by itself:\n${child.stderr()}`).toEqual({
      code: 0,
      signal: null,
    });

    const rounds = child.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Round);
    expect(rounds).toHaveLength(ROUNDS);
    for (const r of rounds) {
      expect(r.problems, `round ${r.round}`).toEqual([]);
      expect(r.state).toBe('closed');
      expect(r.closeMs, `round ${r.round}`).toBeLessThanOrEqual(r.drainTimeoutMs + CLOSE_GRACE_MS);
    }
    // Thousands in flight when closing (the rounds closed during start() aside).
    expect(Math.max(...rounds.map((r) => r.inFlightAtClose))).toBeGreaterThanOrEqual(1000);

    ledger.ingest(file);
    ledger.note('rounds', ROUNDS);
    ledger.note('inFlightAtClose', rounds.map((r) => r.inFlightAtClose).join(','));
    ledger.note('closeMs/drainMs', rounds.map((r) => `${r.closeMs}/${r.drainTimeoutMs}`).join(','));
    ledger.note('duringStart', rounds.filter((r) => r.duringStart).length);
    ledger.note('exitAfterDone', `${exitMs}ms`);
    ledger.note('time', seconds(Date.now() - started));
    ledger.print();
    // Each close may hand back what it abandoned in flight.
    ledger.assertComplete({ maxDuplicates: ROUNDS * MAX_IN_FLIGHT });
  });

  it('close() while start() connects or joins: the consumer never joins afterwards', async () => {
    // Regression: close() during start() returned and said 'closed', but
    // start() went on to subscribe and run: the KafkaJS consumer joined the
    // group after close(), held partitions that nobody processed, and its
    // sockets kept the process alive.
    const topic = uniqueName('close-start');
    await createTopic(topic, 2);
    const outcomes: string[] = [];
    for (const delayMs of [0, 5, 20, 50, 100, 200]) {
      const groupId = uniqueName('g-close-start');
      const consumer = new BackpressureConsumer(faultConsumer(groupId), {
        topics: [topic],
        handler: () => undefined,
      });
      const started = consumer.start().then(
        () => 'resolved',
        (error: unknown) => `rejected (${String(error)})`,
      );
      await sleep(delayMs);
      await consumer.close({ drainTimeoutMs: 100 });
      const start = await started;
      // Long enough for a join that should not happen to show up.
      await sleep(1500);
      const [group] = (await (await getAdmin()).describeGroups([groupId])).groups;
      outcomes.push(`${delayMs}ms:${start}:${group?.members.length ?? 0}`);
      expect(consumer.state).toBe('closed');
      expect(group?.members ?? [], `members after close() at ${delayMs} ms`).toEqual([]);
    }
    console.info(`[fault:close-during-start] ${outcomes.join(' ')}`);
  });
});
