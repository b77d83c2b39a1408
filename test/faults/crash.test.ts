// Fault case 1, crash: the consumer runs in a child process that is SIGKILLed
// at random moments while a stream of tens of thousands of keyed messages
// flows, and is started again each time, at default settings (`key`
// ordering, concurrency 32, handlers of 0 to 5 ms). Nothing may be missing
// at the end. Duplicates are checked exactly: only messages handled after
// the last commit before a kill may be handled again, and none that the
// commit's metadata marked done. Per kill they stay within 1,000.

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
import { decodeProgress, DoneCursor } from '../../src/consumer/offsets/progress-metadata.js';

const MESSAGES = Number(process.env['CRASH_MESSAGES'] ?? 50_000);
const KILLS = Number(process.env['CRASH_KILLS'] ?? 5);
const PARTITIONS = 6;
/** The most a kill may cost at default settings (maxInFlight 1000, commits every 500 completions). */
const PER_KILL_BOUND = 1000;

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
    ledger.note('kills', KILLS);
    ledger.note('killedAt', killedAt.join(','));
    ledger.note('duplicatesPerKill', analysis.perKill.join('/'));
    ledger.note('uncommittedAtKills', analysis.uncommittedAtKills);
    ledger.note('markedDoneAtKills', analysis.markedDoneAtKills);
    ledger.note('time', seconds(Date.now() - started));
    ledger.print();
    // Only what was handled after the last recorded commit may come again.
    expect(analysis.belowCommit, analysis.belowCommit.slice(0, 10).join(', ')).toEqual([]);
    // And nothing the commit's metadata marked done.
    expect(analysis.markedRedone, analysis.markedRedone.slice(0, 10).join(', ')).toEqual([]);
    // A run never handles a message twice by itself (one member, no rebalance).
    expect(analysis.withinRun).toBe(0);
    const counts = ledger.assertComplete({ maxDuplicates: KILLS * PER_KILL_BOUND });
    expect(counts.duplicates).toBeLessThanOrEqual(analysis.uncommittedAtKills);
    for (const duplicates of analysis.perKill) {
      expect(duplicates, `per kill: ${analysis.perKill.join('/')}`).toBeLessThanOrEqual(
        PER_KILL_BOUND,
      );
    }
  });
});

/** Handled entries in the file so far (re-reads what is new). */
function handledSoFar(ledger: Ledger, file: string): number {
  ledger.ingest(file);
  return ledger.accountedCount;
}

/**
 * Walks the ledger file in order. Runs are separated by `k` lines (written
 * after the killed process is gone); `c` lines carry each commit's offset
 * and metadata. For every message handled again in a later run, its offset
 * must be at or beyond the last commit recorded for its partition, and
 * outside what that commit's metadata marked done: otherwise a committed
 * message was redelivered, or a commit went past unfinished work.
 */
function analyse(textOfFile: string) {
  const committed = new Map<number, { position: number; done: DoneCursorSource }>();
  const handledIn = new Map<string, number>();
  const belowCommit: string[] = [];
  const markedRedone: string[] = [];
  const perKill: number[] = [];
  let withinRun = 0;
  let run = 0;
  /** Handled in this run and not covered by a commit since: the most a kill now can cost. */
  let uncommitted = new Set<string>();
  let uncommittedAtKills = 0;
  /** Handled in a run that ended, above the commit position but marked done: the metadata spares them. */
  let markedDoneAtKills = 0;
  let handledThisRun: [number, number][] = [];
  const covered = (p: number, o: number): boolean => {
    const c = committed.get(p);
    return c !== undefined && (o < c.position || c.done.has(o));
  };
  for (const line of textOfFile.split('\n')) {
    const [kind, rest = ''] = line.split(' ');
    if (kind === 'k') {
      for (const [p, o] of handledThisRun) {
        const c = committed.get(p);
        if (c !== undefined && o >= c.position && c.done.has(o)) markedDoneAtKills += 1;
      }
      handledThisRun = [];
      uncommittedAtKills += uncommitted.size;
      uncommitted = new Set();
      run += 1;
      perKill.push(0);
    } else if (kind === 'c') {
      for (const entry of rest.split(',')) {
        const [p, o, metadata = ''] = entry.split(':') as [string, string, string?];
        const position = Number(o);
        const partition = Number(p);
        const decoded = decodeProgress(metadata, position);
        expect(decoded.kind, `metadata ${metadata}`).not.toBe('ignored');
        const previous = committed.get(partition);
        if (previous !== undefined && previous.position > position) continue;
        committed.set(partition, {
          position,
          done: new DoneCursorSource(decoded.kind === 'ranges' ? decoded.done : []),
        });
        for (const id of uncommitted) {
          const [ip, io] = id.split(':').map(Number) as [number, number];
          if (ip === partition && covered(ip, io)) uncommitted.delete(id);
        }
      }
    } else if (kind === 'h') {
      const [p, o] = rest.split(':').map(Number) as [number, number];
      const previous = handledIn.get(rest);
      if (previous === run) withinRun += 1;
      else if (previous !== undefined) {
        // Handled before the kill that ended run `previous`: that kill cost it.
        perKill[previous] = (perKill[previous] ?? 0) + 1;
        const c = committed.get(p);
        if (c !== undefined && o < c.position) belowCommit.push(`${rest} (commit ${c.position})`);
        else if (c !== undefined && c.done.has(o)) markedRedone.push(rest);
      }
      handledIn.set(rest, run);
      uncommitted.add(rest);
      handledThisRun.push([p, o]);
    }
  }
  return { belowCommit, markedRedone, withinRun, uncommittedAtKills, perKill, markedDoneAtKills };
}

/** Done ranges answering lookups in any order (the ledger's are not ascending). */
class DoneCursorSource {
  readonly #ranges: readonly (readonly [number, number])[];
  constructor(ranges: readonly (readonly [number, number])[]) {
    this.#ranges = ranges;
  }
  has(offset: number): boolean {
    return new DoneCursor(this.#ranges).has(offset);
  }
}
