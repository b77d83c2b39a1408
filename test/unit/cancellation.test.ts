import { describe, expect, it } from 'vitest';
import { BackpressureConsumer } from '../../src/consumer/backpressure-consumer.js';
import type { ClientRun } from '../../src/consumer/kafka/port.js';
import type { HandlerContext, InboundMessage } from '../../src/consumer/options.js';
import { ConfigError } from '../../src/errors.js';
import { LagMonitor } from '../../src/lag/lag-monitor.js';
import type { LagAdmin } from '../../src/lag/options.js';
import { FakeClient } from '../helpers/fake-client.js';

/**
 * `{ signal }` on the consumer's and the lag monitor's async lifecycle
 * methods, driven by a fake client (the real-broker versions are in
 * test/integration/cancellation.test.ts).
 */

/** A client whose start() waits until the test lets it go. */
class SlowStartClient extends FakeClient {
  releaseStart: () => void = () => {};
  steps = 0;
  override async start(run: ClientRun): Promise<void> {
    await super.start(run);
    await new Promise<void>((resolve) => (this.releaseStart = resolve));
    // As the KafkaJS adapter does: no further step once close() began.
    if (run.stopping()) return;
    this.steps += 1;
  }
}

/** Handlers that stay open until released; each records its signal. */
function gated() {
  const open: (() => void)[] = [];
  const signals: AbortSignal[] = [];
  const handler = (_m: InboundMessage<Buffer | null>, context: HandlerContext): Promise<void> => {
    signals.push(context.signal);
    return new Promise<void>((resolve) => open.push(resolve));
  };
  return { open, signals, handler };
}

async function running(handler: ReturnType<typeof gated>['handler'], maxInFlight = 100) {
  const client = new FakeClient();
  const consumer = new BackpressureConsumer(client, {
    topics: ['t'],
    handler,
    circuitBreaker: false,
    ordering: 'unordered',
    concurrency: 10,
    maxInFlight,
    commitIntervalMs: 60_000,
  });
  await consumer.start();
  client.assign('g', [{ topic: 't', partition: 0 }]);
  return { client, consumer };
}

const reasonOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (error: unknown) => error,
  );

describe('consumer: start({ signal })', () => {
  it('an abort while starting closes the consumer, disconnects and rejects with the reason', async () => {
    const client = new SlowStartClient();
    const consumer = new BackpressureConsumer(client, { topics: ['t'], handler: async () => {} });
    const controller = new AbortController();
    const start = reasonOf(consumer.start({ signal: controller.signal }));
    await new Promise((r) => setImmediate(r));
    expect(consumer.state).toBe('starting');
    const reason = new Error('shutting down before the consumer joined');
    controller.abort(reason);
    // The step under way finishes; close() waits for it, takes no further one.
    await new Promise((r) => setImmediate(r));
    client.releaseStart();
    expect(await start).toBe(reason);
    expect(consumer.state).toBe('closed');
    expect(client.disconnected).toBe(true);
    expect(client.steps).toBe(0);
  });

  it('an already aborted signal rejects at once and leaves the consumer idle', async () => {
    const client = new FakeClient();
    const consumer = new BackpressureConsumer(client, { topics: ['t'], handler: async () => {} });
    const reason = new Error('no');
    await expect(consumer.start({ signal: AbortSignal.abort(reason) })).rejects.toBe(reason);
    expect(consumer.state).toBe('idle');
    expect(client.disconnected).toBe(false);
  });

  it('an abort after start() resolved changes nothing', async () => {
    const client = new FakeClient();
    const consumer = new BackpressureConsumer(client, { topics: ['t'], handler: async () => {} });
    const controller = new AbortController();
    await consumer.start({ signal: controller.signal });
    controller.abort();
    await new Promise((r) => setImmediate(r));
    expect(consumer.state).toBe('running');
    await consumer.close();
  });

  it('a signal that is not an AbortSignal is a ConfigError naming it', async () => {
    const consumer = new BackpressureConsumer(new FakeClient(), {
      topics: ['t'],
      handler: async () => {},
    });
    const error: unknown = await reasonOf(consumer.start({ signal: 'stop' as never }));
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).option).toBe('signal');
    await expect(consumer.onIdle({ signal: {} as never })).rejects.toBeInstanceOf(ConfigError);
    await expect(consumer.onDrained({ signal: 1 as never })).rejects.toBeInstanceOf(ConfigError);
    await expect(consumer.close({ signal: null as never })).rejects.toBeInstanceOf(ConfigError);
  });
});

describe('consumer: onIdle({ signal }) and onDrained({ signal })', () => {
  it('onIdle rejects with the reason on abort; other waiters still resolve when idle', async () => {
    const g = gated();
    const { client, consumer } = await running(g.handler);
    void client.deliver('t', 0, 3);
    await new Promise((r) => setImmediate(r));
    expect(consumer.inFlight).toBe(3);
    const controller = new AbortController();
    const aborted = reasonOf(consumer.onIdle({ signal: controller.signal }));
    const plain = consumer.onIdle();
    controller.abort(new Error('gave up'));
    expect(((await aborted) as Error).message).toBe('gave up');
    for (const release of g.open.splice(0)) release();
    await plain;
    expect(consumer.inFlight).toBe(0);
    await consumer.close();
  });

  it('onDrained rejects with the reason on abort while the queue is full', async () => {
    const g = gated();
    const { client, consumer } = await running(g.handler, 4);
    void client.deliver('t', 0, 4);
    await new Promise((r) => setImmediate(r));
    expect(consumer.inFlight).toBe(4);
    const controller = new AbortController();
    const drained = reasonOf(consumer.onDrained({ signal: controller.signal }));
    await new Promise((r) => setImmediate(r));
    controller.abort('enough');
    expect(await drained).toBe('enough');
    await expect(consumer.onIdle({ signal: AbortSignal.abort('x') })).rejects.toBe('x');
    for (const release of g.open.splice(0)) release();
    await consumer.onDrained({ signal: new AbortController().signal });
    await consumer.close();
  });
});

describe('consumer: close({ signal })', () => {
  it('an abort abandons in-flight work as the drain timeout does; the close still commits and disconnects', async () => {
    const g = gated();
    const { client, consumer } = await running(g.handler);
    void client.deliver('t', 0, 3);
    await new Promise((r) => setImmediate(r));
    g.open[0]?.();
    await new Promise((r) => setImmediate(r));
    expect(consumer.inFlight).toBe(2);
    const controller = new AbortController();
    const closed = consumer.close({ drainTimeoutMs: 600_000, signal: controller.signal });
    await new Promise((r) => setImmediate(r));
    expect(consumer.state).toBe('closing');
    const reason = new Error('deadline of the shutdown hook');
    controller.abort(reason);
    await closed;
    expect(consumer.state).toBe('closed');
    expect(client.disconnected).toBe(true);
    // Handlers of abandoned work see their signal aborted with the reason.
    expect(g.signals[1]?.aborted).toBe(true);
    expect(g.signals[1]?.reason).toBe(reason);
    // Only the finished message's offset is committed: the rest is redelivered.
    expect(client.committed.get('t|0')).toBe(1);
  });

  it('a signal given to a later close() call still cuts the wait of the first', async () => {
    const g = gated();
    const { client, consumer } = await running(g.handler);
    void client.deliver('t', 0, 2);
    await new Promise((r) => setImmediate(r));
    const first = consumer.close({ drainTimeoutMs: 600_000 });
    const second = consumer.close({ signal: AbortSignal.abort('now') });
    expect(second).toBe(first);
    await first;
    expect(consumer.state).toBe('closed');
    expect(g.signals.every((s) => s.aborted)).toBe(true);
  });

  it('without an abort, close() waits for the work as before', async () => {
    const g = gated();
    const { client, consumer } = await running(g.handler);
    void client.deliver('t', 0, 2);
    await new Promise((r) => setImmediate(r));
    const controller = new AbortController();
    const closed = consumer.close({ signal: controller.signal });
    await new Promise((r) => setImmediate(r));
    for (const release of g.open.splice(0)) release();
    await closed;
    expect(g.signals.some((s) => s.aborted)).toBe(false);
    expect(client.committed.get('t|0')).toBe(2);
    controller.abort();
  });

  it('[Symbol.asyncDispose] is close() with its defaults', async () => {
    const client = new FakeClient();
    {
      await using consumer = new BackpressureConsumer(client, {
        topics: ['t'],
        handler: async () => {},
      });
      await consumer.start();
    }
    expect(client.disconnected).toBe(true);
  });
});

describe('lag monitor: { signal } on start(), stop() and sample()', () => {
  /** An admin whose fetchTopicOffsets waits until the test lets it go. */
  function slowAdmin() {
    const release: (() => void)[] = [];
    const admin = {
      connect: async () => {},
      fetchOffsets: async () => [
        { topic: 't', partitions: [{ partition: 0, offset: '0', metadata: null }] },
      ],
      fetchTopicOffsets: async () => {
        await new Promise<void>((resolve) => release.push(resolve));
        return [{ partition: 0, offset: '5', high: '5', low: '0' }];
      },
      describeGroups: async (groupIds: string[]) => ({
        groups: groupIds.map((groupId) => ({ groupId, members: [{}], state: 'Stable' })),
      }),
    };
    return { admin: admin as unknown as LagAdmin, release };
  }
  const options = {
    groupId: 'g',
    topics: ['t'],
    intervalMs: 60_000,
    thresholds: { warningLag: 100, criticalLag: 300 },
  };
  const settle = () => new Promise((r) => setImmediate(r));

  it('start: an abort during the first round stops the monitor and rejects with the reason', async () => {
    const { admin, release } = slowAdmin();
    const monitor = new LagMonitor(admin, options);
    const controller = new AbortController();
    const started = reasonOf(monitor.start({ signal: controller.signal }));
    await settle();
    controller.abort('not now');
    expect(await started).toBe('not now');
    expect(monitor.state).toBe('stopped');
    release.forEach((r) => r());
    await monitor.stop();
    await expect(monitor.sample()).rejects.toMatchObject({ code: 'ERR_STATE' });
  });

  it('sample: an abort rejects with the reason; the round still completes', async () => {
    const { admin, release } = slowAdmin();
    const monitor = new LagMonitor(admin, options);
    const controller = new AbortController();
    const sampled = reasonOf(monitor.sample({ signal: controller.signal }));
    await settle();
    controller.abort('late');
    expect(await sampled).toBe('late');
    release.forEach((r) => r());
    await monitor.stop();
    expect(monitor.snapshot()?.total.lag).toBe(5);
  });

  it('stop: an abort ends the wait for the round in progress', async () => {
    const { admin, release } = slowAdmin();
    const monitor = new LagMonitor(admin, options);
    void monitor.sample().catch(() => {});
    await settle();
    const controller = new AbortController();
    let stopped = false;
    const stop = monitor.stop({ signal: controller.signal }).then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    controller.abort();
    await stop;
    expect(monitor.state).toBe('stopped');
    release.forEach((r) => r());
  });

  it('[Symbol.asyncDispose] is stop()', async () => {
    const { admin, release } = slowAdmin();
    let monitor: LagMonitor;
    {
      await using m = new LagMonitor(admin, options);
      monitor = m;
      const started = m.start();
      await settle();
      release.forEach((r) => r());
      await started;
    }
    expect(monitor.state).toBe('stopped');
  });
});
