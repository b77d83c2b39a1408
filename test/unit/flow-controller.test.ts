import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  FlowController,
  type FlowChange,
  type FlowListener,
  type FlowPort,
  type PauseReason,
} from '../../src/consumer/flow/controller.js';
import type { TopicPartition } from '../../src/shared/topic-partition.js';

type PortCall = { readonly op: 'pause' | 'resume'; readonly partitions: string[] };
type ListenerEvent = { readonly op: 'paused' | 'resumed' } & FlowChange;

const key = (tp: TopicPartition): string => `${tp.topic}:${tp.partition}`;
const keys = (tps: readonly TopicPartition[]): string[] => tps.map(key).sort();

function harness() {
  const calls: PortCall[] = [];
  const events: ListenerEvent[] = [];
  /** The last instruction the port received for each partition. */
  const portState = new Map<string, 'pause' | 'resume'>();
  const port: FlowPort = {
    pause: (partitions) => {
      calls.push({ op: 'pause', partitions: keys(partitions) });
      for (const p of partitions) portState.set(key(p), 'pause');
    },
    resume: (partitions) => {
      calls.push({ op: 'resume', partitions: keys(partitions) });
      for (const p of partitions) portState.set(key(p), 'resume');
    },
  };
  const listener: FlowListener = {
    paused: (change) => events.push({ op: 'paused', ...change }),
    resumed: (change) => events.push({ op: 'resumed', ...change }),
  };
  const flow = new FlowController(port, listener);
  const take = (): { calls: PortCall[]; events: ListenerEvent[] } => {
    const result = { calls: calls.splice(0), events: events.splice(0) };
    return result;
  };
  return { flow, calls, events, portState, take };
}

const A0 = { topic: 'a', partition: 0 };
const A1 = { topic: 'a', partition: 1 };
const B0 = { topic: 'b', partition: 0 };

describe('FlowController', () => {
  describe('pause and resume on the last reason', () => {
    it('pauses every assigned partition on a global reason and resumes them when it clears', () => {
      const { flow, take } = harness();
      flow.assign([A0, A1, B0]);
      take();
      flow.add('queue-full');
      const paused = take();
      expect(paused.calls).toEqual([{ op: 'pause', partitions: ['a:0', 'a:1', 'b:0'] }]);
      expect(paused.events).toHaveLength(1);
      expect(paused.events[0]!.op).toBe('paused');
      expect(paused.events[0]!.reason).toBe('queue-full');
      expect(keys(paused.events[0]!.partitions)).toEqual(['a:0', 'a:1', 'b:0']);
      expect(flow.isPaused('a', 0)).toBe(true);

      flow.remove('queue-full');
      const resumed = take();
      expect(resumed.calls).toEqual([{ op: 'resume', partitions: ['a:0', 'a:1', 'b:0'] }]);
      expect(resumed.events).toMatchObject([{ op: 'resumed', reason: 'queue-full' }]);
      expect(flow.isPaused('a', 0)).toBe(false);
      expect(flow.pausedPartitions()).toEqual([]);
    });

    it('resumes only when the last of several global reasons clears', () => {
      const { flow, take } = harness();
      flow.assign([A0]);
      take();
      flow.add('latency');
      flow.add('circuit');
      flow.add('manual');
      expect(take().calls).toEqual([{ op: 'pause', partitions: ['a:0'] }]);
      flow.remove('latency');
      flow.remove('manual');
      expect(take()).toEqual({ calls: [], events: [] });
      expect(flow.isPaused('a', 0)).toBe(true);
      flow.remove('circuit');
      const last = take();
      expect(last.calls).toEqual([{ op: 'resume', partitions: ['a:0'] }]);
      expect(last.events).toMatchObject([{ op: 'resumed', reason: 'circuit' }]);
    });

    it('a per-partition reason pauses only that partition', () => {
      const { flow, take } = harness();
      flow.assign([A0, A1]);
      take();
      flow.add('message-failed', A1);
      const { calls, events } = take();
      expect(calls).toEqual([{ op: 'pause', partitions: ['a:1'] }]);
      expect(events).toMatchObject([{ op: 'paused', reason: 'message-failed', partitions: [A1] }]);
      expect(flow.isPaused('a', 0)).toBe(false);
      expect(flow.isPaused('a', 1)).toBe(true);
      expect(flow.pausedPartitions()).toEqual([A1]);
    });

    it('a global reason over a per-partition one: the partition stays paused until both clear', () => {
      const { flow, take } = harness();
      flow.assign([A0, A1]);
      take();
      flow.add('dlq-unavailable', A0);
      flow.add('circuit');
      // Only a:1 changes state on the global reason.
      const pausedByGlobal = take();
      expect(pausedByGlobal.calls).toEqual([
        { op: 'pause', partitions: ['a:0'] },
        { op: 'pause', partitions: ['a:1'] },
      ]);
      expect(pausedByGlobal.events.map((e) => e.reason)).toEqual(['dlq-unavailable', 'circuit']);
      flow.remove('circuit');
      const afterGlobal = take();
      expect(afterGlobal.calls).toEqual([{ op: 'resume', partitions: ['a:1'] }]);
      expect(afterGlobal.events).toMatchObject([{ op: 'resumed', reason: 'circuit' }]);
      expect(flow.isPaused('a', 0)).toBe(true);
      flow.remove('dlq-unavailable', A0);
      expect(take().calls).toEqual([{ op: 'resume', partitions: ['a:0'] }]);
    });

    it('a per-partition reason clearing under a global reason changes nothing', () => {
      const { flow, take } = harness();
      flow.assign([A0]);
      flow.add('closing');
      flow.add('manual', A0);
      take();
      flow.remove('manual', A0);
      expect(take()).toEqual({ calls: [], events: [] });
      expect(flow.isPaused('a', 0)).toBe(true);
      expect(flow.reasonsFor(A0)).toEqual(['closing']);
    });

    it('the same reason globally and per partition are independent', () => {
      const { flow, take } = harness();
      flow.assign([A0, A1]);
      flow.add('manual');
      flow.add('manual', A0);
      take();
      flow.remove('manual');
      const { calls } = take();
      expect(calls).toEqual([{ op: 'resume', partitions: ['a:1'] }]);
      expect(flow.isPaused('a', 0)).toBe(true);
      expect(flow.hasReason('manual', A0)).toBe(true);
      expect(flow.hasReason('manual', A1)).toBe(false);
      expect(flow.hasReason('manual')).toBe(false);
    });
  });

  describe('idempotence: the port is called only on a change', () => {
    it('adding a reason twice calls the port and the listener once', () => {
      const { flow, take } = harness();
      flow.assign([A0]);
      take();
      flow.add('latency');
      flow.add('latency');
      flow.add('latency', A0);
      flow.add('latency', A0);
      const { calls, events } = take();
      expect(calls).toHaveLength(1);
      expect(events).toHaveLength(1);
    });

    it('removing a reason that is not there does nothing', () => {
      const { flow, take } = harness();
      flow.assign([A0]);
      take();
      flow.remove('latency');
      flow.remove('manual', A0);
      flow.remove('manual', { topic: 'unknown', partition: 9 });
      expect(take()).toEqual({ calls: [], events: [] });
      flow.add('latency');
      take();
      flow.remove('latency');
      flow.remove('latency');
      const { calls } = take();
      expect(calls).toEqual([{ op: 'resume', partitions: ['a:0'] }]);
    });

    it('does not call the port with an empty list', () => {
      const { flow, take } = harness();
      // Nothing assigned: reasons are recorded but nobody changes state.
      flow.add('queue-full');
      flow.remove('queue-full');
      flow.assign([]);
      expect(take()).toEqual({ calls: [], events: [] });
    });
  });

  describe('reasons and diagnostics', () => {
    it('reasonsFor lists global and own reasons without duplicates', () => {
      const { flow } = harness();
      flow.assign([A0]);
      flow.add('latency');
      flow.add('manual', A0);
      flow.add('latency', A0);
      expect(flow.reasonsFor(A0).sort()).toEqual(['latency', 'manual']);
      expect(flow.reasonsFor(A1)).toEqual(['latency']);
      expect(flow.globalReasons()).toEqual(['latency']);
    });

    it('hasReason sees global reasons for any partition', () => {
      const { flow } = harness();
      flow.add('circuit');
      expect(flow.hasReason('circuit')).toBe(true);
      expect(flow.hasReason('circuit', B0)).toBe(true);
      expect(flow.hasReason('latency', B0)).toBe(false);
    });
  });

  describe('exempt(): one partition out of a global reason', () => {
    it('resumes only that partition, and only while no other reason holds it', () => {
      const { flow, take } = harness();
      flow.assign([A0, A1, B0]);
      flow.add('latency');
      take();
      flow.exempt('latency', A1);
      expect(take().calls).toEqual([{ op: 'resume', partitions: ['a:1'] }]);
      expect(flow.hasReason('latency', A1)).toBe(false);
      expect(flow.hasReason('latency', A0)).toBe(true);
      expect(flow.hasReason('latency')).toBe(true);
      expect(flow.reasonsFor(A1)).toEqual([]);
      // Another reason on it still holds it.
      flow.add('manual', A1);
      expect(take().calls).toEqual([{ op: 'pause', partitions: ['a:1'] }]);
      flow.remove('manual', A1);
      take();
      // Moving the exemption pauses the old partition and resumes the new one.
      flow.exempt('latency', B0);
      expect(take().calls).toEqual([
        { op: 'pause', partitions: ['a:1'] },
        { op: 'resume', partitions: ['b:0'] },
      ]);
      flow.exempt('latency', undefined);
      expect(take().calls).toEqual([{ op: 'pause', partitions: ['b:0'] }]);
      // With the reason gone, an exemption changes nothing.
      flow.remove('latency');
      take();
      flow.exempt('latency', A0);
      expect(take().calls).toEqual([]);
    });
  });

  describe('assign()', () => {
    it('tells the port the state of every owned partition', () => {
      const { flow, take } = harness();
      flow.assign([A0, A1]);
      expect(take().calls).toEqual([{ op: 'resume', partitions: ['a:0', 'a:1'] }]);
      flow.add('manual', A1);
      take();
      // A rejoin with the same partitions: the client's flags may be stale, so both are re-told.
      flow.assign([A0, A1]);
      const { calls, events } = take();
      expect(calls).toEqual([
        { op: 'pause', partitions: ['a:1'] },
        { op: 'resume', partitions: ['a:0'] },
      ]);
      // A re-tell is not a change of state: no event.
      expect(events).toEqual([]);
    });

    it('drops per-partition reasons of revoked partitions', () => {
      const { flow, take } = harness();
      flow.assign([A0, A1]);
      flow.add('message-failed', A1);
      flow.add('manual', A0);
      take();
      flow.assign([A0]);
      expect(take().calls).toEqual([{ op: 'pause', partitions: ['a:0'] }]);
      expect(flow.hasReason('message-failed', A1)).toBe(false);
      expect(flow.isPaused('a', 1)).toBe(false);
      expect(flow.pausedPartitions()).toEqual([A0]);
      // Coming back later, it starts clean.
      flow.assign([A0, A1]);
      expect(take().calls).toEqual([
        { op: 'pause', partitions: ['a:0'] },
        { op: 'resume', partitions: ['a:1'] },
      ]);
    });

    it('keeps global reasons across a rebalance and pauses newly assigned partitions under them', () => {
      const { flow, take } = harness();
      flow.assign([A0]);
      flow.add('circuit');
      take();
      flow.assign([A0, B0]);
      const { calls, events } = take();
      expect(calls).toEqual([{ op: 'pause', partitions: ['a:0', 'b:0'] }]);
      expect(events).toEqual([]);
      expect(flow.isPaused('b', 0)).toBe(true);
      flow.remove('circuit');
      expect(take().calls).toEqual([{ op: 'resume', partitions: ['a:0', 'b:0'] }]);
    });

    it('never calls the port for a revoked partition afterwards', () => {
      const { flow, take } = harness();
      flow.assign([A0, B0]);
      take();
      flow.assign([A0]);
      take();
      flow.add('queue-full');
      flow.remove('queue-full');
      const { calls } = take();
      expect(calls.flatMap((c) => c.partitions)).not.toContain('b:0');
    });

    it('applies a per-partition reason recorded before the partition was assigned', () => {
      const { flow, take } = harness();
      flow.add('manual', A0);
      expect(take().calls).toEqual([]);
      flow.assign([A0, A1]);
      expect(take().calls).toEqual([
        { op: 'pause', partitions: ['a:0'] },
        { op: 'resume', partitions: ['a:1'] },
      ]);
    });

    it('round-trips topic names and partition numbers through its keys', () => {
      const { flow, take } = harness();
      const odd = { topic: 'orders.v2_EU-west', partition: 17 };
      flow.assign([odd]);
      flow.add('manual', odd);
      const { events } = take();
      expect(events[0]!.partitions).toEqual([odd]);
      expect(flow.pausedPartitions()).toEqual([odd]);
    });
  });

  describe('property: the port always reflects "has any reason"', () => {
    const REASONS: readonly PauseReason[] = [
      'queue-full',
      'latency',
      'circuit',
      'manual',
      'dlq-unavailable',
      'message-failed',
      'downstream-lag',
      'closing',
    ];
    const UNIVERSE: readonly TopicPartition[] = [
      { topic: 'a', partition: 0 },
      { topic: 'a', partition: 1 },
      { topic: 'a', partition: 2 },
      { topic: 'b', partition: 0 },
      { topic: 'b', partition: 1 },
    ];

    type Command =
      | { kind: 'add' | 'remove'; reason: PauseReason; partition: number | undefined }
      | { kind: 'assign'; partitions: number[] };

    const reasonArb = fc.constantFrom(...REASONS.slice(0, 4));
    const partitionArb = fc.option(fc.nat(UNIVERSE.length - 1), { nil: undefined });
    const command: fc.Arbitrary<Command> = fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('add' as const),
          reason: reasonArb,
          partition: partitionArb,
        }),
      },
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('remove' as const),
          reason: reasonArb,
          partition: partitionArb,
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('assign' as const),
          partitions: fc.uniqueArray(fc.nat(UNIVERSE.length - 1), { maxLength: UNIVERSE.length }),
        }),
      },
    );

    it('matches a model of reason sets over random add / remove / assign sequences', () => {
      fc.assert(
        fc.property(fc.array(command, { maxLength: 120 }), (commands) => {
          const { flow, calls, events, portState } = harness();
          const global = new Set<PauseReason>();
          const local = new Map<string, Set<PauseReason>>();
          let assigned = new Set<string>();
          const hasAny = (k: string): boolean => global.size > 0 || (local.get(k)?.size ?? 0) > 0;

          for (const cmd of commands) {
            const before = new Map(portState);
            calls.length = 0;
            events.length = 0;
            if (cmd.kind === 'assign') {
              const tps = cmd.partitions.map((i) => UNIVERSE[i]!);
              const next = new Set(tps.map(key));
              for (const k of assigned) if (!next.has(k)) local.delete(k);
              assigned = next;
              flow.assign(tps);
              // Every owned partition is told its state, once, and nothing else is touched.
              const told = calls.flatMap((c) => c.partitions).sort();
              expect(told).toEqual([...assigned].sort());
              expect(events).toEqual([]);
            } else {
              const tp = cmd.partition === undefined ? undefined : UNIVERSE[cmd.partition]!;
              const target =
                tp === undefined
                  ? global
                  : (local.get(key(tp)) ?? local.set(key(tp), new Set()).get(key(tp))!);
              if (cmd.kind === 'add') target.add(cmd.reason);
              else target.delete(cmd.reason);
              if (cmd.kind === 'add') flow.add(cmd.reason, tp);
              else flow.remove(cmd.reason, tp);
              // Only changes reach the port: each partition named was in the other state before.
              for (const call of calls) {
                for (const k of call.partitions) {
                  expect(assigned.has(k)).toBe(true);
                  expect(before.get(k)).not.toBe(call.op);
                }
              }
              // One listener event per port call, carrying the reason of the command.
              expect(events.map((e) => e.op)).toEqual(
                calls.map((c) => (c.op === 'pause' ? 'paused' : 'resumed')),
              );
              for (const e of events) expect(e.reason).toBe(cmd.reason);
              expect(events.map((e) => keys(e.partitions))).toEqual(calls.map((c) => c.partitions));
            }

            for (const tp of UNIVERSE) {
              const k = key(tp);
              if (!assigned.has(k)) {
                expect(flow.isPaused(tp.topic, tp.partition)).toBe(false);
                continue;
              }
              const expected = hasAny(k) ? 'pause' : 'resume';
              expect(portState.get(k)).toBe(expected);
              expect(flow.isPaused(tp.topic, tp.partition)).toBe(hasAny(k));
              const modelReasons = new Set([...global, ...(local.get(k) ?? [])]);
              expect(new Set(flow.reasonsFor(tp))).toEqual(modelReasons);
            }
            expect(new Set(flow.globalReasons())).toEqual(global);
          }
        }),
        { numRuns: 500 },
      );
    });
  });
});
