import type { Consumer } from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BackpressureConsumer,
  LagMonitor,
  type BackpressureConsumerOptions,
  type DownstreamLagEvent,
  type PausedEvent,
  type ResumedEvent,
} from '../../src/index.js';
import {
  createTopic,
  disconnectAll,
  expectCommittedAtEnd,
  getAdmin,
  getProducer,
  newKafka,
  produceMessages,
  uniqueName,
  waitFor,
} from '../helpers/kafka.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const open: { close(): Promise<void> }[] = [];

afterAll(async () => {
  for (const item of open.reverse()) await item.close().catch(() => undefined);
  await disconnectAll();
});

function kafkaConsumer(groupId: string): Consumer {
  return newKafka(`bp-${groupId}`).consumer({
    groupId,
    sessionTimeout: 10_000,
    heartbeatInterval: 500,
    maxWaitTimeInMs: 200,
  });
}

function start<T>(groupId: string, options: BackpressureConsumerOptions<T>) {
  const consumer = new BackpressureConsumer(kafkaConsumer(groupId), options);
  open.push({ close: () => consumer.close({ drainTimeoutMs: 1000 }) });
  return consumer;
}

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

const MESSAGES = 1000;
const PAUSE_ABOVE = 200;
const RESUME_BELOW = 50;
/** Stage one stops by itself after this many (until it is paused), so the pause is seen mid-stream. */
const STAGE_ONE_HOLD_AT = 400;

describe('upstream pause across topics (downstreamLag)', () => {
  it('pauses stage one while stage two is behind, resumes once it drained, and loses nothing in either stage', async () => {
    const input = uniqueName('pipe-in');
    const middle = uniqueName('pipe-mid');
    const groupOne = uniqueName('g-stage1');
    const groupTwo = uniqueName('g-stage2');
    await createTopic(input, 2);
    await createTopic(middle, 2);
    await produceMessages(
      input,
      Array.from({ length: MESSAGES }, (_, i) => ({ key: `k${i % 13}`, value: `m${i}` })),
    );

    // Stage two's lag, as any service would watch it: through the admin API.
    const monitor = new LagMonitor(await getAdmin(), {
      groupId: groupTwo,
      topics: [middle],
      intervalMs: 100,
      thresholds: { warningLag: PAUSE_ABOVE },
    });
    open.push({ close: () => monitor.stop() });
    await monitor.start();

    // ---- stage one: forwards every message to the middle topic
    const producer = await getProducer();
    const handledOne = new Set<string>();
    let callsOne = 0;
    const holdOne = gate();
    const stageOneEvents: string[] = [];
    const pausedOne: PausedEvent[] = [];
    const resumedOne: ResumedEvent[] = [];
    const high: DownstreamLagEvent[] = [];
    const normal: DownstreamLagEvent[] = [];
    const stageOne = start(groupOne, {
      topics: [input],
      fromBeginning: true,
      concurrency: 8,
      maxInFlight: 100,
      commitIntervalMs: 200,
      downstreamLag: {
        lag: monitor.lag,
        pauseAboveLag: PAUSE_ABOVE,
        resumeBelowLag: RESUME_BELOW,
        intervalMs: 100,
      },
      handler: async (message) => {
        callsOne += 1;
        // Without a pause stage one would run through the whole input faster
        // than a monitor round: it waits here once it has forwarded enough to
        // put stage two above the mark, until the pause arrived.
        if (handledOne.size >= STAGE_ONE_HOLD_AT) await holdOne.opened;
        await producer.send({
          topic: middle,
          acks: -1,
          messages: [{ key: message.key, value: message.value }],
        });
        handledOne.add(message.value!.toString());
      },
    });
    stageOne.on('flow.paused', (e) => {
      pausedOne.push(e);
      stageOneEvents.push(`paused:${e.reason}`);
    });
    stageOne.on('flow.resumed', (e) => {
      resumedOne.push(e);
      stageOneEvents.push(`resumed:${e.reason}`);
    });
    stageOne.on('downstream.lag-high', (e) => {
      high.push(e);
      stageOneEvents.push('downstream.lag-high');
      holdOne.open();
    });
    stageOne.on('downstream.lag-normal', (e) => {
      normal.push(e);
      stageOneEvents.push('downstream.lag-normal');
    });
    const errors: Error[] = [];
    stageOne.on('consumer.error', (e) => errors.push(e.error));

    // ---- stage two: slow, and stopped entirely until the test lets it go
    const handledTwo = new Set<string>();
    const holdTwo = gate();
    const stageTwo = start(groupTwo, {
      topics: [middle],
      fromBeginning: true,
      concurrency: 4,
      maxInFlight: 50,
      commitIntervalMs: 200,
      handler: async (message) => {
        await holdTwo.opened;
        await sleep(2);
        handledTwo.add(message.value!.toString());
      },
    });

    await Promise.all([stageOne.start(), stageTwo.start()]);

    // Stage two's lag passes the mark: stage one pauses every partition.
    await waitFor(() => high.length > 0, {
      timeoutMs: 60_000,
      message: () =>
        `no downstream.lag-high; monitor lag ${monitor.lag()}, stage one ${handledOne.size}`,
    });
    expect(high[0]!.lag).toBeGreaterThan(PAUSE_ABOVE);
    expect(high[0]!.reason).toBe(`lag ${high[0]!.lag} > pauseAboveLag ${PAUSE_ABOVE}`);
    // Held by the new reason (the queue may be full too: stage one's handlers
    // were waiting, so no flow.paused needs to carry this reason).
    expect(stageOne.downstreamLagging).toBe(true);
    for (const p of stageOne.partitions()) {
      expect(p.paused).toBe(true);
      expect(p.reasons).toContain('downstream-lag');
    }

    // While paused nothing new is fetched: what was in flight finishes, and
    // then stage one stands still for several monitor rounds.
    const callsAtPause = callsOne;
    const inFlightAtPause = stageOne.inFlight;
    await stageOne.onIdle();
    const settled = callsOne;
    expect(settled).toBeLessThanOrEqual(callsAtPause + inFlightAtPause);
    await sleep(1500);
    expect(callsOne).toBe(settled);
    // The queue drained; only the downstream rule holds the partitions now.
    for (const p of stageOne.partitions()) {
      expect(p.paused).toBe(true);
      expect(p.reasons).toEqual(['downstream-lag']);
    }
    expect(handledOne.size).toBeLessThan(MESSAGES);
    expect(stageOne.downstreamLagging).toBe(true);

    // Stage two drains: below the low mark stage one resumes, and the
    // pipeline runs to the end (pausing again whenever stage two falls behind).
    holdTwo.open();
    await waitFor(() => normal.length > 0, {
      timeoutMs: 60_000,
      message: () => `no downstream.lag-normal; monitor lag ${monitor.lag()}`,
    });
    expect(normal[0]!.lag).toBeLessThan(RESUME_BELOW);
    expect(resumedOne.some((e) => e.reason === 'downstream-lag')).toBe(true);

    await waitFor(() => handledOne.size === MESSAGES && handledTwo.size === MESSAGES, {
      timeoutMs: 120_000,
      message: () => `stage one ${handledOne.size}, stage two ${handledTwo.size} of ${MESSAGES}`,
    });
    await expectCommittedAtEnd(groupOne, input);
    await expectCommittedAtEnd(groupTwo, middle);
    // Nothing lost: every input value went through both stages.
    const all = Array.from({ length: MESSAGES }, (_, i) => `m${i}`);
    expect([...handledOne].sort()).toEqual([...all].sort());
    expect([...handledTwo].sort()).toEqual([...all].sort());
    // Once stage two is caught up, stage one is not held.
    await waitFor(() => !stageOne.downstreamLagging, { timeoutMs: 30_000 });
    expect(stageOne.partitions().every((p) => !p.reasons.includes('downstream-lag'))).toBe(true);
    expect(errors).toEqual([]);
    // Every pause by this rule was matched by a resume.
    const pauses = high.length;
    expect(normal.length).toBe(pauses);
    process.stdout.write(
      `downstream-lag: ${pauses} pause(s); first at stage-two lag ${high[0]!.lag}, first resume at ${normal[0]!.lag}; ` +
        `stage one stood at ${settled} handler calls while paused; events ${stageOneEvents.filter((e) => e.includes('downstream')).join(' ')}\n`,
    );
  });
});
