// The process for the close-under-load case (test/faults/close.test.ts).
// Round after round, a consumer of one group starts, works with thousands of
// messages in flight, and is closed at a random moment (now and then while
// start() is still joining the group). Each round reports one JSON line:
// how long close() took against its drain timeout, what was in flight, the
// committed offsets, and the range they had to fall in. Then a last
// consumer finishes the topic, and the process ends by itself: no
// process.exit(), so a handle left open by the library keeps it alive and
// the test sees it.

import { BackpressureConsumer } from '../../../src/index.js';
import { between, faultConsumer, sleep } from '../../helpers/faults.js';
import { committedOffsets, disconnectAll, endOffsets, getAdmin } from '../../helpers/kafka.js';
import { LedgerFile, offsetId } from '../../helpers/ledger.js';

const env = (name: string): string => {
  const value = process.env[name];
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const topic = env('FAULT_TOPIC');
const groupId = env('FAULT_GROUP');
const rounds = Number(env('FAULT_ROUNDS'));
const maxInFlight = Number(env('FAULT_MAX_IN_FLIGHT'));
const ledger = new LedgerFile(env('FAULT_LEDGER'));

/** Every offset handled by any round so far, per partition. */
const handled = new Map<number, Set<number>>();
const markHandled = (partition: number, offset: number) => {
  let set = handled.get(partition);
  if (!set) handled.set(partition, (set = new Set()));
  set.add(offset);
};

function makeConsumer(slow: boolean, onDone?: (partition: number, offset: number) => void) {
  return new BackpressureConsumer(faultConsumer(groupId), {
    topics: [topic],
    fromBeginning: true,
    ordering: 'key',
    concurrency: 64,
    maxInFlight,
    commitIntervalMs: 500,
    handler: async (message, { signal }) => {
      const ms = slow ? between(20, 80) : 0;
      // Half the handlers honour the abort signal, half ignore it (and may
      // finish after close() gave up on them: that work is done but not
      // committed, so it comes again).
      if (Math.random() < 0.5) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(resolve, ms);
          signal.addEventListener('abort', () => {
            clearTimeout(timer);
            reject(signal.reason);
          });
        });
      } else {
        await sleep(ms);
      }
      const offset = Number(message.offset);
      markHandled(message.partition, offset);
      ledger.handled(offsetId(message.partition, offset));
      onDone?.(message.partition, offset);
    },
  });
}

for (let round = 1; round <= rounds; round += 1) {
  const before = await committedOffsets(groupId, topic);
  const doneBeforeClose = new Map<number, Set<number>>();
  let closing = false;
  const consumer = makeConsumer(true, (partition, offset) => {
    if (closing) return;
    let set = doneBeforeClose.get(partition);
    if (!set) doneBeforeClose.set(partition, (set = new Set()));
    set.add(offset);
  });
  const drainTimeoutMs = between(500, 3000);
  // One round in four closes while start() is still connecting and joining.
  const duringStart = round % 4 === 2;
  const started = consumer.start();
  let startError = '';
  if (duringStart) {
    started.catch((error: unknown) => (startError = String(error)));
    await sleep(between(0, 50));
  } else {
    await started;
    await sleep(between(300, 2000));
  }
  const inFlightAtClose = consumer.inFlight;
  closing = true;
  const t0 = performance.now();
  await consumer.close({ drainTimeoutMs });
  const closeMs = Math.round(performance.now() - t0);
  if (duringStart) await started.catch(() => undefined);

  // Committed offsets must cover exactly what may be committed: never an
  // offset not handled (loss), at least the contiguous run of offsets this
  // round finished before close() was called (what finished is committed).
  const committed = await committedOffsets(groupId, topic);
  const problems: string[] = [];
  const ends = await endOffsets(topic);
  for (const [partition] of ends) {
    const from = before.get(partition) ?? 0;
    const to = committed.get(partition) ?? 0;
    for (let o = from; o < to; o += 1) {
      if (!handled.get(partition)?.has(o)) {
        problems.push(`p${partition}: offset ${o} committed but never handled`);
        break;
      }
    }
    let expected = from;
    const done = doneBeforeClose.get(partition);
    while (done?.has(expected)) expected += 1;
    if (to < expected) problems.push(`p${partition}: committed ${to}, finished up to ${expected}`);
  }
  // A closed consumer has left the group: nothing keeps consuming behind our back.
  const [group] = (await (await getAdmin()).describeGroups([groupId])).groups;
  const members = group?.members.length ?? 0;
  if (members > 0) problems.push(`${members} member(s) still in the group after close()`);
  console.log(
    JSON.stringify({
      round,
      duringStart,
      startError,
      drainTimeoutMs,
      closeMs,
      inFlightAtClose,
      state: consumer.state,
      committed: Object.fromEntries(committed),
      problems,
    }),
  );
}

// Finish the topic with one more consumer, then close it.
const last = makeConsumer(false);
await last.start();
const ends = await endOffsets(topic);
for (;;) {
  const committed = await committedOffsets(groupId, topic);
  if ([...ends].every(([p, end]) => committed.get(p) === end)) break;
  await sleep(200);
}
await last.close();
await disconnectAll();
console.log('done');
// Only fires if something else keeps the process alive (unref'd): names it.
setTimeout(() => {
  console.error(`still alive: ${JSON.stringify(process.getActiveResourcesInfo())}`);
}, 5000).unref();
