// Fault case 1, crash: the consumer runs in a child process that is SIGKILLed
// at random moments while a stream of tens of thousands of messages flows,
// and is started again each time. Nothing may be missing at the end, and the
// duplicates are bounded: each kill can cost at most what was in flight plus
// one fetch, and (checked exactly) only messages at or beyond the partition's
// last commit before the kill may be handled again.

import { mkdtempSync, readFileSync, appendFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { between, runChild, seconds, sleep, type Child } from '../helpers/faults.js';
import {
  createTopic,
  disconnectAll,
  endOffsets,
  expectCommittedAtEnd,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';
import { Ledger } from '../helpers/ledger.js';

const MESSAGES = Number(process.env['CRASH_MESSAGES'] ?? 30_000);
const KILLS = Number(process.env['CRASH_KILLS'] ?? 5);
const PARTITIONS = 6;
const MAX_IN_FLIGHT = 300;
const FETCH_BYTES = 16 * 1024;
const COMMIT_MS = 100;
// The smallest record the producer below writes takes at least 10 bytes in a
// v2 record batch (7 bytes of framing, a 2-byte key, a 1-byte value), so one
// fetch of FETCH_BYTES carries at most this many messages.
const FETCH_MESSAGES = Math.ceil(FETCH_BYTES / 10);

const children: Child[] = [];
const dir = mkdtempSync(join(tmpdir(), 'bp-crash-'));

afterAll(async () => {
  for (const child of children) await child.kill();
  await disconnectAll();
  rmSync(dir, { recursive: true, force: true });
});

describe('fault: crash', () => {
  it(`SIGKILLed ${KILLS} times during a stream of ${MESSAGES}+ messages: nothing lost, duplicates bounded`, async () => {
    const started = Date.now();
    const topic = uniqueName('crash');
    const groupId = uniqueName('g-crash');
    const file = join(dir, 'ledger.log');
    await createTopic(topic, PARTITIONS);
    const ledger = new Ledger('crash');

    // A stream, not a backlog: production runs until every kill is done (so
    // each restarted consumer has new work to be killed in the middle of)
    // and at least MESSAGES were written.
    let producedCount = 0;
    let killsDone = false;
    const production = (async () => {
      while (!killsDone || producedCount < MESSAGES) {
        const chunk = Array.from({ length: 1000 }, (_, j) => ({
          key: `k${(producedCount + j) % 300}`,
          value: String(producedCount + j),
        }));
        await produceMessages(topic, chunk);
        producedCount += chunk.length;
        await sleep(400);
      }
    })();
    // Awaited below; this only keeps a failure during the kills from leaving it unhandled.
    production.catch(() => undefined);

    const spawn = () => {
      const child = runChild(new URL('./children/crash-consumer.ts', import.meta.url), {
        FAULT_TOPIC: topic,
        FAULT_GROUP: groupId,
        FAULT_LEDGER: file,
        FAULT_MAX_IN_FLIGHT: String(MAX_IN_FLIGHT),
        FAULT_FETCH_BYTES: String(FETCH_BYTES),
        FAULT_COMMIT_MS: String(COMMIT_MS),
      });
      children.push(child);
      return child;
    };

    let child = spawn();
    const killedAt: string[] = [];
    try {
      for (let kill = 1; kill <= KILLS; kill += 1) {
        if (kill === 1) {
          // While it connects and joins the group.
          await sleep(between(300, 2500));
        } else {
          // While it is busy: after some progress of its own, at a random moment.
          const before = handledSoFar(ledger, file);
          await waitFor(() => handledSoFar(ledger, file) >= before + 1000, {
            timeoutMs: 90_000,
            message: () => `no progress before kill ${kill}: ${child.stderr()}`,
          });
          await sleep(between(0, 1500));
        }
        await child.kill();
        killedAt.push(`${seconds(Date.now() - started)}@${handledSoFar(ledger, file)}`);
        appendFileSync(file, `k ${kill}\n`);
        child = spawn();
      }
    } finally {
      killsDone = true;
    }
    await production;
    ledger.expectOffsets(await endOffsets(topic));
    expect(producedCount).toBeGreaterThanOrEqual(MESSAGES);
    expect(ledger.expectedCount).toBe(producedCount);
    await waitFor(() => (ledger.ingest(file), ledger.isComplete()), {
      timeoutMs: 120_000,
      intervalMs: 250,
      message: () =>
        `not all handled after the last restart: ${ledger.summary()}\n${child.stderr()}`,
    });
    await expectCommittedAtEnd(groupId, topic);

    // The last one closes gracefully and its process exits by itself. (It
    // may have had nothing left to do: wait until it runs, so the signal
    // does not arrive before its handler is installed.)
    await child.waitForLine((line) => line === 'started');
    child.process.kill('SIGTERM');
    const exit = await Promise.race([child.exited, sleep(30_000).then(() => 'still running')]);
    expect(exit, child.stderr()).toEqual({ code: 0, signal: null });
    expect(child.lines).toContain('closed');
    ledger.ingest(file);

    const analysis = analyse(readFileSync(file, 'utf8'));
    const bound = KILLS * (MAX_IN_FLIGHT + FETCH_MESSAGES);
    ledger.note('kills', KILLS);
    ledger.note('killedAt', killedAt.join(','));
    ledger.note('uncommittedAtKills', analysis.uncommittedAtKills);
    ledger.note('bound', bound);
    ledger.note('time', seconds(Date.now() - started));
    ledger.print();
    // Only what was handled after the last recorded commit may come again.
    expect(analysis.belowCommit, analysis.belowCommit.slice(0, 10).join(', ')).toEqual([]);
    // A run never handles a message twice by itself (one member, no rebalance).
    expect(analysis.withinRun).toBe(0);
    const counts = ledger.assertComplete({ maxDuplicates: bound });
    expect(counts.duplicates).toBeLessThanOrEqual(analysis.uncommittedAtKills);
  });
});

/** Handled entries in the file so far (re-reads what is new). */
function handledSoFar(ledger: Ledger, file: string): number {
  ledger.ingest(file);
  return ledger.accountedCount;
}

/**
 * Walks the ledger file in order. Runs are separated by `k` lines (written
 * after the killed process is gone). For every message handled again in a
 * later run, its offset must be at or beyond the last commit recorded for
 * its partition before that run: a lower one would mean a committed message
 * was redelivered, or a commit went past unfinished work.
 */
function analyse(textOfFile: string) {
  const committed = new Map<number, number>();
  const handledIn = new Map<string, number>();
  const belowCommit: string[] = [];
  let withinRun = 0;
  let run = 0;
  /** Handled in this run at or beyond the last commit: the most a kill now can cost. */
  let uncommitted = new Set<string>();
  let uncommittedAtKills = 0;
  for (const line of textOfFile.split('\n')) {
    const [kind, rest = ''] = line.split(' ');
    if (kind === 'k') {
      uncommittedAtKills += uncommitted.size;
      uncommitted = new Set();
      run += 1;
    } else if (kind === 'c') {
      for (const entry of rest.split(',')) {
        const [p, o] = entry.split(':').map(Number) as [number, number];
        committed.set(p, Math.max(committed.get(p) ?? 0, o));
        for (const id of uncommitted) {
          const [ip, io] = id.split(':').map(Number) as [number, number];
          if (ip === p && io < o) uncommitted.delete(id);
        }
      }
    } else if (kind === 'h') {
      const [p, o] = rest.split(':').map(Number) as [number, number];
      const previous = handledIn.get(rest);
      if (previous === run) withinRun += 1;
      else if (previous !== undefined && o < (committed.get(p) ?? 0))
        belowCommit.push(`${rest} (commit ${committed.get(p)})`);
      handledIn.set(rest, run);
      uncommitted.add(rest);
    }
  }
  return { belowCommit, withinRun, uncommittedAtKills };
}
