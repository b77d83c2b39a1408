import { setMaxListeners } from 'node:events';
import { EventEmitter } from 'eventemitter3';
import type { Consumer, EachBatchPayload, KafkaMessage } from 'kafkajs';
import pLimit, { type LimitFunction } from 'p-limit';
import { AimdLimit } from './flow/adaptive-concurrency.js';
import { Circuit, type CircuitState } from './failure/breaker.js';
import { deadLetterMessage } from './failure/dead-letter-record.js';
import { DownstreamLagWatch } from './flow/downstream-lag.js';
import {
  BackpressureError,
  ConfigError,
  DlqPublishError,
  HandlerTimeoutError,
  MessageShedError,
  isBackpressureError,
  toError,
} from '../errors.js';
import type {
  ConsumerEvents,
  ErrorEvent,
  HandlerSettledEvent,
  PartitionLagSample,
} from './events.js';
import { FlowController, type PauseReason } from './flow/controller.js';
import { InFlightBudget } from './admission/budget.js';
import { KafkaConsumerPort } from './kafka/kafkajs.js';
import { LatencyWindow } from './flow/latency-window.js';
import { OffsetTracker } from './offsets/tracker.js';
import {
  resolveOptions,
  type BackpressureConsumerOptions,
  type InboundMessage,
  type ResolvedOptions,
} from './options.js';
import { Lanes, laneKeyOf, type LaneItem } from './dispatch/lanes.js';
import { backoffDelay } from './failure/retry.js';
import { shedAge } from './failure/shedding.js';
import { tpKey, type TopicPartition } from '../shared/topic-partition.js';

export type ConsumerState = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

interface PartitionState {
  readonly topic: string;
  readonly partition: number;
  readonly tracker: OffsetTracker;
  /** Set when the partition is taken away: its work is no longer ours to commit. */
  revoked: boolean;
  /** From the last batch: the log-end offset the broker reported. */
  highWatermark: number | undefined;
  /** The first offset of the first batch: where the partition stands for its lag until a message is admitted. */
  fetchedFrom: number | undefined;
  /** Paused for holding its share of a contended in-flight budget. */
  shareFull: boolean;
  /** Messages of this partition holding it at a failure (dead letter not written, or attempts exhausted without a DLQ). */
  holding: number;
  /** Bytes of this partition's messages in the in-flight budget. */
  bytes: number;
  /** Done messages of this partition's topic (shared per topic, outlives the partition). */
  readonly consumed: { count: number };
  /** The partition's lane in `partition` mode, built once rather than per message. */
  readonly laneKey: string | undefined;
}

interface Work extends LaneItem {
  readonly state: PartitionState;
  readonly raw: KafkaMessage;
  readonly offset: number;
  readonly bytes: number;
}

/** A message the fast path handed back to the general path, with how far it got. */
interface Leftover {
  readonly work: Work;
  /** Built and, when a deserializer is set, deserialized, unless `deserializeError` says it failed. */
  readonly message?: InboundMessage<unknown>;
  readonly deserializeError?: Error;
  /** Its first try failed with this (already reported to the breaker). */
  readonly failed?: Error;
}

/** A snapshot of one assigned partition, for dashboards and the demo. */
export interface PartitionSnapshot extends TopicPartition {
  /** Log-end offset minus the commit position, from the last fetched batch (no extra request). */
  readonly lag: number | undefined;
  readonly highWatermark: number | undefined;
  readonly commitPosition: number | undefined;
  readonly committedOffset: number | undefined;
  readonly inFlight: number;
  readonly paused: boolean;
  readonly reasons: readonly PauseReason[];
}

export interface CloseOptions {
  /** How long to wait for in-flight work before abandoning it (it is redelivered later). */
  readonly drainTimeoutMs?: number;
}

const HEARTBEAT_POLL_MS = 500;
/** Every how many periodic commits the unchanged positions are committed again too. */
const REASSERT_EVERY_TICKS = 6;
/** How long a partition at its fair share waits in place for capacity before pausing. */
const FAIR_WAIT_MS = 250;

/**
 * Wraps a KafkaJS consumer you created so that it consumes as fast as the
 * handler allows and no faster, without losing a message.
 *
 * Data flows one way: batch -> admission (in-flight budget) -> lane (order)
 * -> limit, breaker, timeout, retry -> done or dead letter -> offset tracker
 * -> commit. Queue depth, latency and the breaker feed the flow controller,
 * which alone pauses and resumes partitions.
 */
export class BackpressureConsumer<T = Buffer | null> extends EventEmitter<ConsumerEvents> {
  readonly #consumer: Consumer;
  readonly #options: ResolvedOptions<T>;
  readonly #port: KafkaConsumerPort;
  readonly #flow: FlowController;
  readonly #budget: InFlightBudget;
  readonly #lanes: Lanes<Work>;
  readonly #limit: LimitFunction;
  readonly #circuit: Circuit;
  readonly #latency: LatencyWindow;
  readonly #aimd: AimdLimit | undefined;
  readonly #partitions = new Map<string, PartitionState>();
  readonly #consumed = new Map<string, { count: number }>();
  readonly #downstream: DownstreamLagWatch | undefined;
  /** Aborted on close when in-flight work is abandoned. */
  readonly #closeController = new AbortController();
  readonly #timers: NodeJS.Timeout[] = [];
  /** Handler attempts running now, oldest first (deadlines follow start order). */
  readonly #running = new RunningAttempts();
  #deadlineTimer: NodeJS.Timeout | undefined;
  /** What a running attempt reports to as it ends, however it ends. */
  readonly #attempts: AttemptOwner;
  readonly #unsubscribe: (() => void)[] = [];
  #state: ConsumerState = 'idle';
  #groupId = '';
  #queueFull = false;
  /** Partitions with `holding` above zero. */
  #holdingPartitions = 0;
  #latencyHigh = false;
  /** Set while a noticed rebalance drains: admission stops. */
  #rebalancing = false;
  /** A drain already ran for the rebalance in progress; reset by the next assignment. */
  #drained = false;
  /** When any handler attempt last succeeded: tells a poison message from an outage. */
  #lastSuccessAt = Number.NEGATIVE_INFINITY;
  #lastAttemptEndedAt = Number.NEGATIVE_INFINITY;
  #commitChain: Promise<void> = Promise.resolve();
  /** Offsets the broker accepted, as KafkaJS reports them, by partition key. */
  readonly #confirmed = new Map<string, string>();
  #closePromise: Promise<void> | undefined;
  /** Settles once start()'s KafkaJS steps are over (either way). */
  #starting: Promise<void> = Promise.resolve();
  #idleWaiters: (() => void)[] = [];

  constructor(consumer: Consumer, options: BackpressureConsumerOptions<T>) {
    super();
    if (typeof consumer !== 'object' || consumer === null || typeof consumer.run !== 'function') {
      throw new ConfigError(
        'consumer',
        'a KafkaJS Consumer (kafka.consumer({ groupId }))',
        consumer,
      );
    }
    this.#consumer = consumer;
    this.#options = resolveOptions(options);
    const o = this.#options;
    this.#port = new KafkaConsumerPort(consumer, (error, during) => this.#error(error, during));
    this.#flow = new FlowController(this.#port, {
      /** @event flow.paused */
      paused: (change) => this.emit('flow.paused', change),
      /** @event flow.resumed */
      resumed: (change) => this.emit('flow.resumed', change),
    });
    this.#budget = new InFlightBudget(o.maxInFlight, o.maxInFlightBytes, o.resumeThreshold);
    this.#lanes = new Lanes((work) => void this.#process(work));
    this.#aimd = o.adaptiveConcurrency
      ? new AimdLimit({
          min: o.adaptiveConcurrency.minConcurrency,
          max: o.adaptiveConcurrency.maxConcurrency,
          initial: o.adaptiveConcurrency.maxConcurrency,
          targetLatencyMs: o.adaptiveConcurrency.targetLatencyMs,
          decreaseFactor: o.adaptiveConcurrency.decreaseFactor,
          increaseStep: o.adaptiveConcurrency.increaseStep,
        })
      : undefined;
    this.#limit = pLimit(o.concurrency);
    this.#latency = new LatencyWindow(o.clock, o.latencyWindowMs);
    this.#attempts = {
      handlerTimeoutMs: o.handlerTimeoutMs,
      attemptEnded: (live) => {
        this.#running.remove(live);
        const now = o.clock.now();
        this.#lastAttemptEndedAt = now;
        this.#latency.record(now - live.started, now);
      },
    };
    // One abort listener per sleeping retry: many by design.
    setMaxListeners(0, this.#closeController.signal);
    this.#circuit = new Circuit(
      o.circuitBreaker,
      (state) => this.#onCircuit(state),
      (error) => this.#isRetriable(toError(error)),
    );
    this.#downstream = o.downstreamLag
      ? new DownstreamLagWatch(o.downstreamLag, {
          changed: ({ paused, status, lag, reason }) => {
            if (paused) {
              this.#flow.add('downstream-lag');
              /** @event downstream.lag-high */
              this.emit('downstream.lag-high', { status, lag, reason });
            } else {
              this.#flow.remove('downstream-lag');
              /** @event downstream.lag-normal */
              this.emit('downstream.lag-normal', { status, lag, reason });
            }
          },
          error: (error) => this.#error(error, 'downstream-lag'),
        })
      : undefined;
  }

  /** Lifecycle state. */
  get state(): ConsumerState {
    return this.#state;
  }

  /** Messages fetched and not done. */
  get inFlight(): number {
    return this.#budget.messages;
  }

  get inFlightBytes(): number {
    return this.#budget.bytes;
  }

  /** Highest in-flight count seen since start. */
  get peakInFlight(): number {
    return this.#budget.peakMessages;
  }

  get peakInFlightBytes(): number {
    return this.#budget.peakBytes;
  }

  /** Handlers running right now. */
  get activeHandlers(): number {
    return this.#limit.activeCount;
  }

  /** The concurrency limit in force (changes with adaptive concurrency and the circuit). */
  get concurrency(): number {
    return this.#limit.concurrency;
  }

  get circuitState(): CircuitState {
    return this.#circuit.state;
  }

  /** The consumer group, known once the first assignment arrived. */
  get groupId(): string {
    return this.#groupId;
  }

  /**
   * Messages done since start, per topic: handled, dead-lettered or shed.
   * Only grows (a revoked partition's count stays); `kafka_messages_consumed_total`.
   */
  consumedCounts(): ReadonlyMap<string, number> {
    return new Map([...this.#consumed].map(([topic, c]) => [topic, c.count]));
  }

  /** True while the `downstreamLag` rule holds every partition paused. */
  get downstreamLagging(): boolean {
    return this.#downstream?.paused ?? false;
  }

  /** The rolling handler-latency percentile (`latency.percentile`, default p95), in ms. */
  latencyPercentile(): number | undefined {
    return this.#latency.percentile(this.#options.latencyPercentile);
  }

  partitions(): PartitionSnapshot[] {
    return [...this.#partitions.values()].map((s) => {
      const position = s.tracker.commitPosition();
      return {
        topic: s.topic,
        partition: s.partition,
        highWatermark: s.highWatermark,
        commitPosition: position,
        committedOffset: s.tracker.committedOffset,
        lag:
          s.highWatermark === undefined
            ? undefined
            : Math.max(0, s.highWatermark - (position ?? s.fetchedFrom ?? s.highWatermark)),
        inFlight: s.tracker.pendingCount,
        paused: this.#flow.isPaused(s.topic, s.partition),
        reasons: this.#flow.reasonsFor(s),
      };
    });
  }

  /** Connects, subscribes and starts consuming. Resolves once KafkaJS runs. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') {
      throw new BackpressureError(
        'ERR_STATE',
        `start() called while ${this.#state}; a consumer starts once.`,
      );
    }
    this.#setState('starting');
    const o = this.#options;
    // Polled from the start: a stage already far behind holds the first assignment.
    this.#downstream?.start();
    const { GROUP_JOIN, REBALANCING, CRASH, COMMIT_OFFSETS } = this.#consumer.events;
    this.#unsubscribe.push(
      this.#consumer.on(GROUP_JOIN, (event) => {
        this.#groupId = event.payload.groupId;
        this.#onAssigned(event.payload.memberAssignment);
      }),
      // KafkaJS noticed the rebalance itself (between batches) and is about to
      // rejoin; it cannot be held back from here. Commit what is done at once,
      // outside the commit chain: the OffsetCommit then reaches the
      // coordinator before the JoinGroup (which first waits for a
      // FindCoordinator round trip) and still carries the old generation.
      this.#consumer.on(REBALANCING, () => void this.#commitNow('all')),
      // KafkaJS's commitOffsets resolves without committing when its runner
      // is not running (restarting after a crash, stopping): only this
      // event, emitted after the broker accepted a commit, confirms one.
      this.#consumer.on(COMMIT_OFFSETS, (event) => {
        for (const { topic, partitions } of event.payload.topics) {
          for (const { partition, offset } of partitions) {
            this.#confirmed.set(tpKey(topic, partition), String(offset));
          }
        }
      }),
      this.#consumer.on(CRASH, (event) =>
        this.#error(toError(event.payload.error), 'consumer-crash'),
      ),
    );
    // close() may come while KafkaJS connects, subscribes or joins. The step
    // under way is finished (close() waits for it before disconnecting) and
    // no further one is taken: otherwise the consumer joined the group after
    // close() had returned, holding partitions nobody processed, with its
    // sockets keeping the process alive.
    const closed = () => (this.#state as ConsumerState) !== 'starting';
    const steps = (async () => {
      await this.#consumer.connect();
      if (closed()) return;
      await this.#consumer.subscribe({ topics: [...o.topics], fromBeginning: o.fromBeginning });
      if (closed()) return;
      await this.#consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: o.partitionsConsumedConcurrently,
        eachBatch: (payload) => this.#eachBatch(payload),
      });
    })();
    this.#starting = steps.then(
      () => undefined,
      () => undefined,
    );
    await steps;
    if (closed()) return;
    let ticks = 0;
    this.#every(o.commitIntervalMs, () => {
      ticks += 1;
      void this.#commit(ticks % REASSERT_EVERY_TICKS === 0 ? 'all' : 'changed');
    });
    if (o.latency)
      this.#every(Math.max(50, Math.floor(o.latency.windowMs / 20)), () => this.#checkLatency());
    if (o.adaptiveConcurrency)
      this.#every(o.adaptiveConcurrency.intervalMs, () => this.#adaptConcurrency());
    this.#every(o.lagSampleIntervalMs, () => this.#sampleLag());
    this.#setState('running');
  }

  /**
   * Pauses consumption by hand. Without a partition every assigned partition
   * pauses; the manual reason is one among others, so `resume()` only lets
   * go of what `pause()` held.
   */
  pause(partition?: TopicPartition): void {
    this.#flow.add('manual', partition);
  }

  resume(partition?: TopicPartition): void {
    this.#flow.remove('manual', partition);
  }

  /** Resolves when nothing is in flight. */
  onIdle(): Promise<void> {
    if (this.#budget.messages === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Resolves when in-flight work is at or below the low mark (the queue is not full). */
  async onDrained(): Promise<void> {
    while (!this.#budget.low()) await this.#budget.changed(() => this.#budget.low());
  }

  /** Commits every done offset now (it also happens every `commitIntervalMs`). */
  commit(): Promise<void> {
    return this.#commit();
  }

  /**
   * Stops fetching, lets in-flight work finish (up to `drainTimeoutMs`),
   * commits, and disconnects the KafkaJS consumer. Work still running after
   * the timeout is abandoned (its signal aborted) and redelivered later.
   * Safe to call more than once, and from inside a handler.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.#closePromise ??= this.#close(options);
    return this.#closePromise;
  }

  async #close(options: CloseOptions): Promise<void> {
    const timeoutMs = options.drainTimeoutMs ?? this.#options.closeDrainTimeoutMs;
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0) {
      throw new ConfigError('drainTimeoutMs', 'an integer number of milliseconds >= 0', timeoutMs);
    }
    const wasStarted = this.#state !== 'idle';
    this.#setState('closing');
    // Nothing new is admitted from here; batches already delivered stop at the next message.
    this.#flow.add('closing');
    this.#budget.wakeAll();
    // Let go of the caller first: close() may be awaited from inside a handler,
    // and that handler is part of what is being drained.
    await Promise.resolve();
    const drained = await this.#waitFor(() => this.#budget.messages === 0, timeoutMs);
    if (!drained) {
      const reason = new BackpressureError(
        'ERR_DRAIN_TIMEOUT',
        `In-flight work did not finish within ${timeoutMs} ms of close().`,
      );
      this.#closeController.abort(reason);
      this.#abortRunning(reason);
      this.#circuit.wakeAll();
    }
    if (this.#deadlineTimer !== undefined) clearTimeout(this.#deadlineTimer);
    for (const timer of this.#timers) clearInterval(timer);
    this.#downstream?.stop();
    if (wasStarted) {
      await this.#starting;
      await this.#commit('all');
      try {
        await this.#consumer.disconnect();
      } catch (error) {
        this.#error(toError(error), 'close');
      }
    }
    for (const off of this.#unsubscribe) off();
    this.#circuit.shutdown();
    this.#setState('closed');
  }

  // ---------------------------------------------------------------- admission

  async #eachBatch(payload: EachBatchPayload): Promise<void> {
    const { batch, resolveOffset, isRunning, isStale } = payload;
    const state = this.#stateOf(batch.topic, batch.partition);
    state.highWatermark = Number(batch.highWatermark);
    state.fetchedFrom ??= Number(batch.messages[0]?.offset ?? batch.highWatermark);
    const tp = { topic: batch.topic, partition: batch.partition };
    const mode = this.#options.ordering;
    let complete = true;
    // Nothing in the loop yields except the capacity wait, and no user code
    // runs except queue.full listeners, so whether to stop admitting can only
    // change at the start, after that wait and after that event: checking
    // it per message (isStale() builds a string key each call) is wasted work.
    let checkStop = true;
    // The last offset taken (admitted, or already ours) and not yet resolved
    // in KafkaJS. Resolving once before each wait and at the end, rather
    // than per message, is the same to KafkaJS: it reads resolved offsets
    // only after eachBatch returns or while we wait.
    let unresolved: string | undefined;
    // Past the budget's low mark a partition admits no more than its fair
    // share while others could use the room. In `partition` ordering its one
    // lane would only queue the rest. In `key` ordering its keys bound how
    // much of the surplus could run, so when other partitions' batches are
    // admitted side by side (partitionsConsumedConcurrently above 1), their
    // keys run in its place: one partition refilling the whole budget left
    // 178 of 256 handlers busy in the slow-downstream benchmark.
    const capShare =
      this.#partitions.size > 1 &&
      (mode === 'partition' ||
        (mode === 'key' && this.#options.partitionsConsumedConcurrently > 1));

    for (const message of batch.messages) {
      const offset = Number(message.offset);
      if (state.tracker.seen(offset)) {
        // Fetched again after a rejoin while we still hold it: already running or done.
        unresolved = message.offset;
        continue;
      }
      if (checkStop) {
        if (this.#stopAdmitting(tp, isRunning, isStale)) {
          complete = false;
          break;
        }
        checkStop = false;
      }
      const bytes = sizeOf(message);
      const fits = this.#budget.fits(bytes);
      // Held back by its share rather than by the budget: then it waits
      // until a chunk of its own work is done, not just one message.
      const capped = fits && capShare && this.#overShare(state);
      if (!fits || capped) {
        // Blocked on capacity is the high mark, even when the last message
        // left the counters just short of the limit.
        if (!fits && !this.#queueFull) this.#setQueueFull(true);
        // Fairness without throwing fetched data away: a partition already
        // holding its share of a contended budget waits in place only briefly
        // (capacity usually frees within milliseconds). Still blocked after
        // FAIR_WAIT_MS, it pauses and the rest of its batch is fetched again,
        // so the other partitions' batches get the slots that free up. In
        // `partition` ordering a partition runs one message at a time, so
        // beyond its share of a budget past the low mark it only queues
        // while others starve: there the share applies before the budget
        // is exhausted.
        if (unresolved !== undefined) {
          resolveOffset(unresolved);
          unresolved = undefined;
        }
        const clock = this.#options.clock;
        let admit = false;
        while (!admit) {
          const giveUpAt =
            state.tracker.pendingCount >= this.#fairShare()
              ? clock.now() + FAIR_WAIT_MS
              : Number.POSITIVE_INFINITY;
          // Wake when a chunk has freed (the low mark), not at every finished
          // message: admitting one message per wake-up costs a timer, a
          // heartbeat check and a promise each, which is most of the
          // per-message cost when handlers are fast. The low mark keeps work
          // queued while the chunk is refilled.
          const blocked = capped
            ? () => this.#holdsShare(state) || !this.#budget.fits(bytes)
            : () => !this.#budget.fits(bytes);
          const ok = await this.#waitHeartbeating(
            () => blocked() && clock.now() < giveUpAt,
            payload,
            capped
              ? () => !this.#holdsShare(state) && this.#budget.fits(bytes)
              : () => this.#atLowMark() && this.#budget.fits(bytes),
            giveUpAt,
          );
          if (!ok || state.revoked || this.#stopAdmitting(tp, isRunning, isStale)) break;
          if (!blocked()) {
            admit = true;
          } else if (this.#holdsShare(state)) {
            // Only the partition's own finished work lifts this pause
            // (#finish), so it is taken only while some of that work remains:
            // a partition whose work all finished during the wait would stay
            // paused for good.
            state.shareFull = true;
            this.#flow.add('partition-full', tp);
            break;
          }
          // Otherwise its own work drained meanwhile: keep waiting in place.
        }
        if (!admit) {
          complete = false;
          break;
        }
      }
      state.tracker.admit(offset);
      this.#budget.add(bytes);
      state.bytes += bytes;
      // Resolving at admission, not at completion, is what lets the next fetch
      // of this partition overlap processing: KafkaJS fetches from the last
      // resolved offset + 1. Commits come from the tracker, never from KafkaJS.
      unresolved = message.offset;
      if (!this.#queueFull && this.#budget.full()) {
        this.#setQueueFull(true);
        // Listeners of queue.full run synchronously and may pause or close.
        checkStop = true;
      }
      this.#lanes.push({
        laneKey:
          mode === 'partition'
            ? state.laneKey
            : laneKeyOf(mode, batch.topic, batch.partition, message.key),
        state,
        raw: message,
        offset,
        bytes,
      });
    }

    if (unresolved !== undefined) resolveOffset(unresolved);
    if (complete && batch.messages.length > 0) {
      // Covers transaction markers after the last message: without it the
      // commit position would sit on a control record forever.
      state.tracker.advanceTo(Number(batch.lastOffset()) + 1);
      resolveOffset(batch.lastOffset());
    }
    // While every partition is held for capacity, keep the fetch loop here
    // rather than idling in KafkaJS: our heartbeats then notice a rebalance
    // first, and in-flight work can be drained and committed before rejoining.
    if (this.#queueFull)
      await this.#waitHeartbeating(
        () => this.#queueFull,
        payload,
        () => this.#atLowMark(),
      );
  }

  #stopAdmitting(tp: TopicPartition, isRunning: () => boolean, isStale: () => boolean): boolean {
    if (this.#state === 'closing' || this.#state === 'closed' || this.#rebalancing) return true;
    if (!isRunning() || isStale()) return true;
    if (!this.#flow.isPaused(tp.topic, tp.partition)) return false;
    // Capacity is waited for in place; any other reason stops this batch here.
    return this.#flow.reasonsFor(tp).some((reason) => reason !== 'queue-full');
  }

  /**
   * Waits while `blocked()` holds, heartbeating so the group does not evict
   * us. When the heartbeat reports a rebalance, drains and commits before
   * letting KafkaJS rejoin. Returns false when admission should stop.
   */
  async #waitHeartbeating(
    blocked: () => boolean,
    payload: EachBatchPayload,
    wakeWhen: () => boolean,
    until = Number.POSITIVE_INFINITY,
  ): Promise<boolean> {
    while (blocked()) {
      if (
        !payload.isRunning() ||
        payload.isStale() ||
        this.#state === 'closing' ||
        this.#state === 'closed'
      ) {
        return false;
      }
      const left = until - this.#options.clock.now();
      await this.#budgetChangeOrTimeout(Math.max(1, Math.min(HEARTBEAT_POLL_MS, left)), wakeWhen);
      try {
        await payload.heartbeat();
      } catch (error) {
        if (isRebalance(error)) await this.#drainForRebalance(payload);
        throw error;
      }
    }
    return true;
  }

  async #drainForRebalance(payload: EachBatchPayload): Promise<void> {
    // Every batch still queued in KafkaJS's worker hits the same heartbeat
    // error; one drain per rebalance is enough.
    if (this.#drained) return;
    this.#drained = true;
    this.#rebalancing = true;
    /** @event group.rebalance phase `draining` */
    this.emit('group.rebalance', { phase: 'draining', assigned: [], revoked: [], dropped: 0 });
    const deadline = this.#options.clock.now() + this.#options.rebalanceDrainTimeoutMs;
    while (this.#budget.messages > 0 && this.#options.clock.now() < deadline) {
      await this.#budgetChangeOrTimeout(
        Math.min(HEARTBEAT_POLL_MS, Math.max(1, deadline - this.#options.clock.now())),
        () => this.#budget.messages === 0,
      );
      // The coordinator keeps our session alive on these even while it
      // answers REBALANCE_IN_PROGRESS; without them a long drain could cost
      // the membership the drain is meant to protect.
      await payload.heartbeat().catch(() => undefined);
    }
    await this.#commit('all');
    this.#rebalancing = false;
  }

  #onAssigned(memberAssignment: Record<string, number[]>): void {
    this.#drained = false;
    const assigned: TopicPartition[] = [];
    const keys = new Set<string>();
    for (const [topic, partitions] of Object.entries(memberAssignment)) {
      for (const partition of partitions) {
        assigned.push({ topic, partition });
        keys.add(tpKey(topic, partition));
      }
    }
    const revoked: TopicPartition[] = [];
    let dropped = 0;
    for (const [key, state] of this.#partitions) {
      if (keys.has(key)) continue;
      // Work of a partition we no longer own is skipped as it comes up and
      // never committed: its new owner starts from the last commit (kafkajs#1046).
      state.revoked = true;
      dropped += state.tracker.pendingCount;
      this.#partitions.delete(key);
      revoked.push({ topic: state.topic, partition: state.partition });
    }
    for (const tp of assigned) this.#stateOf(tp.topic, tp.partition);
    this.#flow.assign(assigned);
    this.#budget.wakeAll();
    /** @event group.rebalance phase `assigned` */
    this.emit('group.rebalance', { phase: 'assigned', assigned, revoked, dropped });
  }

  /** At its fair share while the budget is past the low mark (contended). */
  #overShare(state: PartitionState): boolean {
    return !this.#budget.low() && state.tracker.pendingCount >= this.#fairShare();
  }

  /** Above the low mark of its fair share: what a `partition-full` pause lasts for. */
  #holdsShare(state: PartitionState): boolean {
    return state.tracker.pendingCount > this.#fairShare() * this.#options.resumeThreshold;
  }

  /** A partition's fair part of `maxInFlight` when every assigned partition wants more. */
  #fairShare(): number {
    return Math.max(1, Math.ceil(this.#budget.maxMessages / Math.max(1, this.#partitions.size)));
  }

  #consumedOf(topic: string): { count: number } {
    let counter = this.#consumed.get(topic);
    if (counter === undefined) {
      counter = { count: 0 };
      this.#consumed.set(topic, counter);
    }
    return counter;
  }

  #stateOf(topic: string, partition: number): PartitionState {
    const key = tpKey(topic, partition);
    let state = this.#partitions.get(key);
    if (state === undefined) {
      state = {
        topic,
        partition,
        tracker: new OffsetTracker(),
        revoked: false,
        highWatermark: undefined,
        fetchedFrom: undefined,
        holding: 0,
        bytes: 0,
        shareFull: false,
        consumed: this.#consumedOf(topic),
        laneKey: laneKeyOf('partition', topic, partition, null),
      };
      this.#partitions.set(key, state);
    }
    return state;
  }

  // ---------------------------------------------------------------- processing

  /**
   * Runs a lane's messages from `first` on, each to completion. Never rejects.
   * A fresh message's first try takes the fast path ({@link #run}); anything
   * else, and whatever the fast path hands back, goes through
   * {@link #handle}, which then starts the lane's next message as usual.
   */
  async #process(first: Work): Promise<void> {
    const left = this.#fastPath() ? await this.#limit(() => this.#run(first)) : { work: first };
    if (left === undefined) return;
    let done = false;
    try {
      done = await this.#handle(left);
    } catch (error) {
      this.#error(toError(error), 'handler');
    } finally {
      this.#finish(left.work, done);
    }
  }

  /** The fast path is open: the circuit is closed and nobody times attempts through handler.settled. */
  #fastPath(): boolean {
    return this.#circuit.state === 'closed' && this.listenerCount('handler.settled') === 0;
  }

  /**
   * The common case, kept cheap: a lane's messages run one after another in
   * the one concurrency slot this call holds, instead of asking p-limit for a
   * slot per message (a lane runs one message at a time anyway, so the bound
   * holds). Each is tried once outside opossum's call path and reported to
   * the breaker after ({@link Circuit.succeeded}, {@link Circuit.failed}).
   * The slot goes back, and the lane's next message starts the usual way,
   * as soon as another lane waits for a slot or the limit was lowered below
   * what runs. A message that is not plain (to be shed, undeserializable,
   * failed, or met with the circuit no longer closed) is returned, with how
   * far it got, to finish on the general path outside the slot.
   */
  #run(first: Work): Promise<Leftover | undefined> {
    // Driven by callbacks rather than awaits: per message that saves a
    // promise and a turn of the microtask queue, which is measurable when
    // handlers are fast.
    return new Promise((end) => this.#step(first, end));
  }

  /**
   * One message of a run; the next one starts from this one's settlement.
   * `now`, when given, is the clock's time a moment ago (the previous
   * message's end): a clock read is about 60 ns, a few percent of the cost
   * per message when handlers are fast.
   */
  #step(work: Work, end: (left: Leftover | undefined) => void, now?: number): void {
    const o = this.#options;
    try {
      if (!this.#fastPath() || this.#abandoned(work)) return end({ work });
      if (o.shed && shedAge(work.raw.timestamp, Date.now(), o.shed.maxAgeMs) !== undefined)
        return end({ work });
      const message = this.#messageOf(work) as { payload: unknown } & InboundMessage<unknown>;
      const deserialize = o.deserialize;
      if (deserialize === undefined) return this.#try(work, message, end, now);
      let payload: unknown;
      try {
        payload = deserialize(work.raw, { topic: message.topic, partition: message.partition });
      } catch (thrown) {
        return end({ work, message, deserializeError: toError(thrown) });
      }
      Promise.resolve(payload).then(
        (value) => {
          message.payload = value;
          if (!this.#fastPath() || this.#abandoned(work)) end({ work, message });
          else this.#try(work, message, end);
        },
        (thrown: unknown) => end({ work, message, deserializeError: toError(thrown) }),
      );
    } catch (error) {
      // Not expected (the handler's and the deserializer's errors are caught
      // where they are called): the message goes the general path, not lost.
      this.#error(toError(error), 'handler');
      end({ work });
    }
  }

  /** The message's first try, then the lane's next message or the end of the run. */
  #try(
    work: Work,
    message: InboundMessage<unknown>,
    end: (left: Leftover | undefined) => void,
    now?: number,
  ): void {
    this.#call(message as InboundMessage<T>, 1, now, (failed, thrown) => {
      if (failed) {
        const error = toError(thrown);
        // Counted (and the circuit opened, if this was the failure too many)
        // before the general path looks at the circuit's state.
        void this.#circuit.failed(error).then(() => end({ work, message, failed: error }));
        return;
      }
      try {
        this.#circuit.succeeded();
        this.#settle(work, true);
      } catch (error) {
        // A listener of an event these emit threw: reported, and the lane
        // goes on (this runs in a promise reaction, where it would escape).
        this.#error(toError(error), 'handler');
      }
      const next = this.#lanes.take(work);
      if (next === undefined) return end(undefined);
      const limit = this.#limit;
      if (limit.pendingCount > 0 || limit.activeCount > limit.concurrency) {
        void this.#process(next);
        return end(undefined);
      }
      this.#step(next, end, this.#lastAttemptEndedAt);
    });
  }

  #messageOf(work: Work): InboundMessage<unknown> {
    const raw = work.raw;
    return {
      topic: work.state.topic,
      partition: work.state.partition,
      offset: raw.offset,
      key: raw.key ?? null,
      value: raw.value ?? null,
      headers: raw.headers ?? {},
      timestamp: raw.timestamp,
      payload: raw.value ?? null,
    };
  }

  /**
   * True when the message is done (handled, dead-lettered or shed), false
   * when abandoned. Picks up where the fast path left it, if it got anywhere.
   */
  async #handle(left: Leftover): Promise<boolean> {
    const { work } = left;
    if (this.#abandoned(work)) return false;
    const { topic, partition } = work.state;
    const o = this.#options;
    let message = left.message;
    let deserializeError = left.deserializeError;
    if (message === undefined) {
      message = this.#messageOf(work);
      if (o.shed) {
        const ageMs = shedAge(work.raw.timestamp, Date.now(), o.shed.maxAgeMs);
        if (ageMs !== undefined) return this.#shed(work, message, ageMs);
      }
    }
    // A message the fast path returned is deserialized, unless that failed.
    const deserialize = o.deserialize;
    if (deserialize && (left.message === undefined || deserializeError !== undefined)) {
      for (;;) {
        if (deserializeError === undefined) {
          try {
            (message as { payload: unknown }).payload = await deserialize(work.raw, {
              topic,
              partition,
            });
            break;
          } catch (thrown) {
            deserializeError = toError(thrown);
          }
        }
        const error = deserializeError;
        deserializeError = undefined;
        if (o.deadLetter) return this.#deadLetter(work, message, error, 'deserialization', 0);
        await this.#holdAndRetry(work, error, 0);
        if (this.#abandoned(work)) return false;
      }
    }

    // The fast path's failed first try counts as this loop's first.
    let attempt = left.failed === undefined ? 0 : 1;
    let failed = left.failed;
    let firstFailureAt: number | undefined;
    /** Failed while the circuit was not closed: counts no more, and waits behind the others. */
    let blamed = false;
    for (;;) {
      let error: Error;
      if (failed !== undefined) {
        error = failed;
        failed = undefined;
      } else {
        if (this.#abandoned(work)) return false;
        attempt += 1;
        try {
          const ready = message as InboundMessage<T>;
          await this.#limit(() => this.#attempt(ready, attempt, !blamed));
          return true;
        } catch (thrown) {
          error = toError(thrown);
        }
      }
      if (isBackpressureError(error) && error.code === 'ERR_CIRCUIT_OPEN') {
        // Refused without running: not an attempt. Wait for the breaker to move.
        attempt -= 1;
        await this.#circuit.changed({ last: blamed });
        continue;
      }
      // From its first failure, also one that costs no attempt below: others
      // succeeding after it is what tells a poison message from an outage.
      firstFailureAt ??= o.clock.now();
      if (this.#circuit.state !== 'closed') {
        // The downstream is down (this failure may be the one that opened the
        // circuit): not the message's fault, so it costs no attempt. It has
        // counted against the downstream once: from now on its calls do not
        // count, and it waits behind messages that have not failed, so the
        // next probe is one of those. Otherwise a message that always fails
        // would be the probe every time, or, once it is all that is left in
        // flight (the open circuit stops fetching), fail every probe and hold
        // the circuit open forever. Its probe now closes the circuit instead,
        // fetching resumes, and fresh messages tell an outage from a poison.
        attempt -= 1;
        blamed = true;
        if (this.#circuit.state === 'open') await this.#circuit.changed({ last: true });
        continue;
      }
      const retriable = this.#isRetriable(error);
      if (
        retriable &&
        attempt >= o.retry.maxAttempts &&
        o.circuitBreaker &&
        this.#lastSuccessAt < firstFailureAt
      ) {
        // Nothing has succeeded anywhere since this message started failing:
        // that looks like the downstream, not the message. Keep trying so the
        // breaker can see the outage and open; dead-letter only once others
        // succeed while this one still fails.
        attempt -= 1;
        await this.#sleep(backoffDelay(o.retry.maxAttempts, o.retry));
        continue;
      }
      if (!retriable || attempt >= o.retry.maxAttempts) {
        if (o.deadLetter) {
          return this.#deadLetter(
            work,
            message,
            error,
            retriable ? 'attempts-exhausted' : 'non-retriable',
            attempt,
          );
        }
        // No dead-letter topic: losing the message is not an option, so the
        // partition holds here and the message is retried at the longest delay.
        await this.#holdAndRetry(work, error, attempt);
        continue;
      }
      const delayMs = backoffDelay(attempt, o.retry);
      /** @event message.retry */
      this.emit('message.retry', {
        topic,
        partition,
        offset: work.raw.offset,
        attempt,
        delayMs,
        error,
      });
      await this.#sleep(delayMs);
    }
  }

  /**
   * One try of the handler, through the breaker. Per-message costs matter
   * here: no timer, listener or AbortController per attempt. Deadlines are
   * kept by one timer over the running attempts (all share one timeout, so
   * the oldest always expires first), and the handler's signal is only made
   * when the handler reads it.
   */
  #attempt(message: InboundMessage<T>, attempt: number, counted: boolean): Promise<void> {
    const run = this.#circuit.run(() => this.#invoke(message, attempt), counted);
    return this.listenerCount('handler.settled') === 0 ? run : this.#observe(run, message, attempt);
  }

  /** Calls the handler once, under the attempt deadline. */
  #invoke(message: InboundMessage<T>, attempt: number): Promise<void> {
    return new Promise<void>((resolve, reject) =>
      this.#call(message, attempt, undefined, (failed, thrown) =>
        failed ? reject(thrown) : resolve(),
      ),
    );
  }

  /**
   * Calls the handler once, under the attempt deadline, and reports how the
   * attempt ended to `ended`, once: with `failed` false, or with what the
   * handler threw (which may be any value, `undefined` too), or the reason
   * its deadline or close gave.
   */
  #call(
    message: InboundMessage<T>,
    attempt: number,
    now: number | undefined,
    ended: (failed: boolean, thrown?: unknown) => void,
  ): void {
    const live = new LiveAttempt(this.#attempts, now ?? this.#options.clock.now(), ended);
    this.#running.add(live);
    this.#armDeadline();
    let result: unknown;
    try {
      result = this.#options.handler(message, new AttemptContext(attempt, live));
    } catch (thrown) {
      // A handler that throws synchronously is treated like one that rejects.
      if (live.settle()) ended(true, thrown);
      return;
    }
    Promise.resolve(result).then(
      () => {
        if (!live.settle()) return;
        // settle() just stamped the end of this attempt.
        this.#lastSuccessAt = this.#lastAttemptEndedAt;
        ended(false);
      },
      (thrown: unknown) => {
        if (live.settle()) ended(true, thrown);
      },
    );
  }

  /** Reports an attempt's duration and outcome as `handler.settled`; only used while someone listens. */
  #observe(run: Promise<void>, message: InboundMessage<T>, attempt: number): Promise<void> {
    const started = this.#options.clock.now();
    const report = (outcome: HandlerSettledEvent['outcome']) => {
      try {
        /** @event handler.settled */
        this.emit('handler.settled', {
          topic: message.topic,
          partition: message.partition,
          offset: message.offset,
          attempt,
          durationMs: this.#options.clock.now() - started,
          outcome,
        });
      } catch (error) {
        // A listener that throws must not turn a success into a failure.
        this.#error(toError(error), 'handler');
      }
    };
    return run.then(
      () => report('success'),
      (error: unknown) => {
        // Refused by the open circuit: the handler did not run.
        if (!(isBackpressureError(error) && error.code === 'ERR_CIRCUIT_OPEN')) {
          report(error instanceof HandlerTimeoutError ? 'timeout' : 'error');
        }
        throw error;
      },
    );
  }

  /** Keeps one timer set for the oldest running attempt's deadline. */
  #armDeadline(): void {
    if (this.#deadlineTimer !== undefined) return;
    const oldest = this.#running.oldest;
    if (oldest === undefined) return;
    const delay = Math.max(0, oldest.deadline - this.#options.clock.now());
    this.#deadlineTimer = setTimeout(() => {
      this.#deadlineTimer = undefined;
      const now = this.#options.clock.now();
      for (let live = this.#running.oldest; live !== undefined; live = this.#running.oldest) {
        if (live.deadline > now) break;
        this.#running.remove(live);
        live.fail(new HandlerTimeoutError(this.#options.handlerTimeoutMs));
      }
      this.#armDeadline();
    }, delay);
    this.#deadlineTimer.unref();
  }

  /** Aborts every running attempt (close gave up waiting for them). */
  #abortRunning(reason: Error): void {
    for (const live of this.#running.takeAll()) live.fail(reason);
  }

  /** Dead-letters (reason `shed`) or skips a message too old to be worth handling. */
  async #shed(work: Work, message: InboundMessage<unknown>, ageMs: number): Promise<boolean> {
    const shed = this.#options.shed;
    if (!shed) throw new Error('unreachable: shedding without a shed option');
    if (shed.action === 'dead-letter') {
      const error = new MessageShedError(ageMs, shed.maxAgeMs);
      if (!(await this.#deadLetter(work, message, error, 'shed', 0))) return false;
    }
    /** @event message.shed */
    this.emit('message.shed', {
      topic: message.topic,
      partition: message.partition,
      offset: message.offset,
      timestamp: message.timestamp,
      ageMs,
      maxAgeMs: shed.maxAgeMs,
      action: shed.action,
    });
    return true;
  }

  async #holdAndRetry(work: Work, error: Error, attempts: number): Promise<void> {
    const tp = { topic: work.state.topic, partition: work.state.partition };
    const retryInMs = this.#options.retry.maxDelayMs;
    this.#hold(work.state, 'message-failed', +1);
    /** @event message.failed */
    this.emit('message.failed', { ...tp, offset: work.raw.offset, attempts, error, retryInMs });
    try {
      await this.#sleep(retryInMs);
    } finally {
      this.#hold(work.state, 'message-failed', -1);
    }
  }

  /** Counts messages holding a partition for `reason`; the reason lasts while any remains. */
  #hold(state: PartitionState, reason: PauseReason, delta: 1 | -1): void {
    state.holding += delta;
    if (state.holding === 0 && delta === -1) this.#holdingPartitions -= 1;
    if (state.holding === 1 && delta === 1) this.#holdingPartitions += 1;
    const tp = { topic: state.topic, partition: state.partition };
    if (delta === 1 && state.holding === 1) {
      this.#flow.add(reason, tp);
      // This partition's work stops counting toward the low mark (see #atLowMark).
      if (this.#queueFull && this.#atLowMark()) this.#setQueueFull(false);
    }
    if (delta === -1 && state.holding === 0) this.#flow.remove(reason, tp);
  }

  async #deadLetter(
    work: Work,
    message: InboundMessage<unknown>,
    error: Error,
    reason: 'attempts-exhausted' | 'non-retriable' | 'deserialization' | 'shed',
    attempts: number,
  ): Promise<boolean> {
    const dlq = this.#options.deadLetter;
    if (!dlq) throw new Error('unreachable: dead-lettering without a deadLetter option');
    let topic: string;
    try {
      topic = dlq.topic(message);
    } catch (chooserError) {
      topic = '';
      error = new BackpressureError(
        'ERR_DLQ_PUBLISH',
        `deadLetter.topic chooser failed: ${toError(chooserError).message}`,
        {
          cause: chooserError,
        },
      );
    }
    let failures = 0;
    let holding = false;
    try {
      for (;;) {
        if (this.#abandoned(work)) return false;
        try {
          if (topic === '') throw error;
          await dlq.producer.send({
            topic,
            acks: -1,
            messages: [
              deadLetterMessage(message, {
                groupId: this.#groupId,
                reason,
                error,
                attempts,
                failedAt: new Date(),
                includeStack: dlq.includeStack,
                maxStackLength: dlq.maxStackLength,
              }),
            ],
          });
          /** @event dlq.routed */
          this.emit('dlq.routed', {
            topic: message.topic,
            partition: message.partition,
            offset: message.offset,
            dlqTopic: topic,
            reason,
            attempts,
            error,
          });
          return true;
        } catch (sendError) {
          failures += 1;
          if (!holding) {
            holding = true;
            this.#hold(work.state, 'dlq-unavailable', +1);
          }
          const retryInMs = backoffDelay(failures, {
            initialDelayMs: dlq.retryInitialDelayMs,
            maxDelayMs: dlq.retryMaxDelayMs,
            multiplier: 2,
            jitter: 0.2,
          });
          const wrapped =
            isBackpressureError(sendError) && sendError.code === 'ERR_DLQ_PUBLISH'
              ? sendError
              : new DlqPublishError(topic, sendError);
          /** @event dlq.failed */
          this.emit('dlq.failed', {
            topic: message.topic,
            partition: message.partition,
            offset: message.offset,
            dlqTopic: topic,
            error: wrapped,
            failures,
            retryInMs,
          });
          await this.#sleep(retryInMs);
          if (topic === '') {
            try {
              topic = dlq.topic(message);
            } catch {
              topic = '';
            }
          }
        }
      }
    } finally {
      if (holding) this.#hold(work.state, 'dlq-unavailable', -1);
    }
  }

  #abandoned(work: Work): boolean {
    return work.state.revoked || this.#closeController.signal.aborted;
  }

  /** Settles the message's accounts and starts its lane's next message. */
  #finish(work: Work, done: boolean): void {
    this.#settle(work, done);
    this.#lanes.done(work);
  }

  /** Settles the message's accounts: offsets, the in-flight budget and what waits on it. */
  #settle(work: Work, done: boolean): void {
    const state = work.state;
    if (done) {
      state.consumed.count += 1;
      if (!state.revoked) state.tracker.complete(work.offset);
    }
    this.#budget.release(work.bytes);
    state.bytes -= work.bytes;
    if (state.shareFull && !this.#holdsShare(state)) {
      state.shareFull = false;
      this.#flow.remove('partition-full', state);
    }
    if (this.#queueFull && this.#atLowMark()) this.#setQueueFull(false);
    if (this.#budget.messages === 0 && this.#idleWaiters.length > 0) {
      const waiters = this.#idleWaiters;
      this.#idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }

  /**
   * The queue-full pause ends at the low mark. Work of partitions held at a
   * failure (a dead letter that cannot be written, a message retried without
   * a DLQ) waits for that failure, not for capacity: counted like the rest,
   * it kept queue-full, and so every other partition, paused until the
   * failure cleared, with the batch loop waiting for a drain that could not
   * come. So the low mark applies to the capacity the held work leaves
   * (`resumeThreshold` of it), and to the work that can drain. Admission
   * still counts everything: the in-flight bound holds.
   */
  #atLowMark(): boolean {
    // Asked at every release while an admission waits: without held work it is the budget's own low mark.
    if (this.#holdingPartitions === 0) return this.#budget.low();
    let heldMessages = 0;
    let heldBytes = 0;
    for (const state of this.#partitions.values()) {
      if (state.holding === 0) continue;
      heldMessages += state.tracker.pendingCount;
      heldBytes += state.bytes;
    }
    const fraction = this.#options.resumeThreshold;
    const budget = this.#budget;
    return (
      budget.messages - heldMessages <= fraction * (budget.maxMessages - heldMessages) &&
      budget.bytes - heldBytes <= fraction * (budget.maxBytes - heldBytes)
    );
  }

  #isRetriable(error: Error): boolean {
    if (isBackpressureError(error) && error.code === 'ERR_HANDLER_FAILED' && !error.retriable)
      return false;
    if ((error as { retriable?: unknown }).retriable === false) return false;
    const predicate = this.#options.retry.isRetriable;
    return predicate ? predicate(error) : true;
  }

  // ---------------------------------------------------------------- triggers

  #setQueueFull(full: boolean): void {
    this.#queueFull = full;
    const event = {
      messages: this.#budget.messages,
      bytes: this.#budget.bytes,
      maxMessages: this.#budget.maxMessages,
      maxBytes: this.#budget.maxBytes,
    };
    if (full) {
      this.#flow.add('queue-full');
      /** @event queue.full */
      this.emit('queue.full', event);
    } else {
      this.#flow.remove('queue-full');
      /** @event queue.drained */
      this.emit('queue.drained', event);
    }
  }

  #checkLatency(): void {
    const settings = this.#options.latency;
    if (!settings) return;
    const latencyMs = this.#latency.percentile(settings.percentile);
    if (!this.#latencyHigh && latencyMs !== undefined && latencyMs > settings.pauseAboveMs) {
      this.#latencyHigh = true;
      this.#flow.add('latency');
      /** @event latency.high */
      this.emit('latency.high', {
        percentile: settings.percentile,
        latencyMs,
        thresholdMs: settings.pauseAboveMs,
      });
    } else if (
      this.#latencyHigh &&
      (latencyMs === undefined || latencyMs < settings.resumeBelowMs)
    ) {
      // An empty window also clears: while paused nothing new is measured,
      // and old samples must not hold the pause forever.
      this.#latencyHigh = false;
      this.#flow.remove('latency');
      /** @event latency.normal */
      this.emit('latency.normal', {
        percentile: settings.percentile,
        latencyMs,
        thresholdMs: settings.resumeBelowMs,
      });
    }
  }

  #sampleLag(): void {
    if (this.#state !== 'running' || this.listenerCount('lag.sample') === 0) return;
    const partitions: PartitionLagSample[] = [];
    let total = 0;
    for (const p of this.partitions()) {
      if (p.lag === undefined || p.highWatermark === undefined) continue;
      partitions.push({
        topic: p.topic,
        partition: p.partition,
        lag: p.lag,
        highWatermark: p.highWatermark,
        commitPosition: p.commitPosition,
      });
      total += p.lag;
    }
    partitions.sort((a, b) =>
      a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1,
    );
    /** @event lag.sample */
    this.emit('lag.sample', { groupId: this.#groupId, partitions, total });
  }

  #adaptConcurrency(): void {
    if (!this.#aimd || this.#circuit.state !== 'closed') return;
    const decision = this.#aimd.update(
      this.#latency.percentile(this.#options.latencyPercentile),
      this.#limit.activeCount + this.#limit.pendingCount,
    );
    if (decision.changed) this.#setConcurrency(decision.limit, decision.reason);
  }

  #setConcurrency(
    to: number,
    reason: 'latency-high' | 'healthy' | 'circuit-half-open' | 'circuit-closed',
  ): void {
    const from = this.#limit.concurrency;
    if (from === to) return;
    this.#limit.concurrency = to;
    /** @event concurrency.changed */
    this.emit('concurrency.changed', { from, to, reason });
  }

  #onCircuit(state: CircuitState): void {
    switch (state) {
      case 'open':
        this.#flow.add('circuit');
        /** @event circuit.open */
        this.emit('circuit.open', { state });
        break;
      case 'half-open':
        // Fetching resumes so there is something to probe with; opossum lets
        // one call through and refuses the rest until it settles.
        this.#setConcurrency(1, 'circuit-half-open');
        this.#flow.remove('circuit');
        /** @event circuit.half-open */
        this.emit('circuit.half-open', { state });
        break;
      case 'closed':
        this.#setConcurrency(this.#aimd?.limit ?? this.#options.concurrency, 'circuit-closed');
        this.#flow.remove('circuit');
        /** @event circuit.closed */
        this.emit('circuit.closed', { state });
        break;
    }
  }

  // ---------------------------------------------------------------- commits

  /**
   * `changed` commits the partitions whose position moved since their last
   * commit; `all` commits every owned partition's position again. The
   * second heals a committed offset that someone else moved back: KafkaJS
   * retries a commit refused during a rebalance under the next generation,
   * so a former owner's late retry can land after the new owner's last
   * commit, and a partition with no further progress would keep the stale
   * offset until its next owner re-processed from it. Rebalances, close and
   * every few periodic commits re-assert everything.
   */
  #commit(which: 'changed' | 'all' = 'changed'): Promise<void> {
    // One commit at a time, in order: a slow commit must not be overtaken by
    // an older position.
    this.#commitChain = this.#commitChain.then(() => this.#commitNow(which));
    return this.#commitChain;
  }

  async #commitNow(which: 'changed' | 'all'): Promise<void> {
    if (this.#state === 'idle' || this.#state === 'closed') return;
    const offsets: { topic: string; partition: number; offset: string }[] = [];
    const states: [PartitionState, number][] = [];
    for (const state of this.#partitions.values()) {
      if (state.revoked) continue;
      const position =
        which === 'all' ? state.tracker.commitPosition() : state.tracker.uncommitted();
      if (position === undefined) continue;
      offsets.push({ topic: state.topic, partition: state.partition, offset: String(position) });
      states.push([state, position]);
    }
    if (offsets.length === 0) return;
    for (const { topic, partition } of offsets) this.#confirmed.delete(tpKey(topic, partition));
    try {
      await this.#consumer.commitOffsets(offsets);
      const accepted = offsets.filter(
        (o) => this.#confirmed.get(tpKey(o.topic, o.partition)) === o.offset,
      );
      for (const [state, position] of states) {
        if (this.#confirmed.get(tpKey(state.topic, state.partition)) === String(position)) {
          state.tracker.markCommitted(position);
        }
      }
      if (accepted.length < offsets.length) {
        // Not an error of the broker's: KafkaJS was not running. The
        // positions stay uncommitted and go out with the next commit.
        this.#options.logger.warn(
          { offsets, accepted: accepted.length },
          'kafkajs-backpressure: KafkaJS skipped an offset commit (consumer not running)',
        );
      }
      /** @event offsets.committed */
      if (accepted.length > 0) this.emit('offsets.committed', { offsets: accepted });
    } catch (error) {
      this.#error(
        new BackpressureError('ERR_COMMIT', `Offset commit failed: ${toError(error).message}`, {
          cause: error,
          retriable: true,
        }),
        'commit',
      );
    }
  }

  // ---------------------------------------------------------------- plumbing

  #setState(state: ConsumerState): void {
    this.#state = state;
    if (state === 'idle') return;
    /** @event consumer.state */
    this.emit('consumer.state', { state });
  }

  #error(error: Error, during: ErrorEvent['during']): void {
    this.#options.logger.error({ err: error, during }, 'kafkajs-backpressure: error');
    /** @event consumer.error */
    this.emit('consumer.error', { error, during });
  }

  #every(ms: number, tick: () => void): void {
    const timer = setInterval(tick, ms);
    timer.unref();
    this.#timers.push(timer);
  }

  /** Sleeps, cut short when the consumer abandons work on close. */
  #sleep(ms: number): Promise<void> {
    const signal = this.#closeController.signal;
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      timer.unref();
      signal.addEventListener('abort', done, { once: true });
    });
  }

  #budgetChangeOrTimeout(ms: number, until?: () => boolean): Promise<void> {
    return this.#budget.changedWithin(ms, until);
  }

  async #waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = this.#options.clock.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - this.#options.clock.now();
      if (left <= 0) return false;
      await this.#budgetChangeOrTimeout(Math.min(left, 250), condition);
    }
    return true;
  }
}

function isRebalance(error: unknown): boolean {
  const type = (error as { type?: unknown } | null)?.type;
  return (
    type === 'REBALANCE_IN_PROGRESS' ||
    type === 'NOT_COORDINATOR_FOR_GROUP' ||
    type === 'ILLEGAL_GENERATION'
  );
}

/** Key + value + header keys and values, in bytes. */
export function sizeOf(message: KafkaMessage): number {
  let bytes = (message.key?.length ?? 0) + (message.value?.length ?? 0);
  const headers = message.headers;
  if (headers) {
    for (const name in headers) {
      bytes += name.length;
      const value = headers[name];
      if (value === undefined) continue;
      if (Array.isArray(value))
        for (const v of value) bytes += typeof v === 'string' ? Buffer.byteLength(v) : v.length;
      else bytes += typeof value === 'string' ? Buffer.byteLength(value) : value.length;
    }
  }
  return bytes;
}

interface AttemptOwner {
  readonly handlerTimeoutMs: number;
  attemptEnded(live: LiveAttempt): void;
}

/**
 * The running attempts in start order, which is deadline order (all share
 * one timeout). A list linked through the attempts themselves: adding and
 * removing one, once per attempt, costs no hashing and allocates nothing.
 */
class RunningAttempts {
  #head: LiveAttempt | undefined;
  #tail: LiveAttempt | undefined;

  get oldest(): LiveAttempt | undefined {
    return this.#head;
  }

  add(live: LiveAttempt): void {
    live.prev = this.#tail;
    live.next = undefined;
    if (this.#tail === undefined) this.#head = live;
    else this.#tail.next = live;
    this.#tail = live;
  }

  /** Removes `live` if it is in the list (removing twice is harmless). */
  remove(live: LiveAttempt): void {
    // In the list: it has a predecessor, or it is the head.
    if (live.prev === undefined && this.#head !== live) return;
    if (live.prev === undefined) this.#head = live.next;
    else live.prev.next = live.next;
    if (live.next === undefined) this.#tail = live.prev;
    else live.next.prev = live.prev;
    live.prev = undefined;
    live.next = undefined;
  }

  /** Empties the list and returns what it held, oldest first. */
  takeAll(): LiveAttempt[] {
    const all: LiveAttempt[] = [];
    for (let live = this.#head; live !== undefined; live = live.next) all.push(live);
    for (const live of all) {
      live.prev = undefined;
      live.next = undefined;
    }
    this.#head = undefined;
    this.#tail = undefined;
    return all;
  }
}

/** A running handler attempt: its deadline, and its signal once the handler asked for it. */
class LiveAttempt {
  readonly started: number;
  readonly deadline: number;
  /** Links of {@link RunningAttempts}. */
  prev: LiveAttempt | undefined = undefined;
  next: LiveAttempt | undefined = undefined;
  readonly #owner: AttemptOwner;
  readonly #ended: (failed: boolean, reason: unknown) => void;
  #controller: AbortController | undefined;
  #reason: Error | undefined;
  #settled = false;

  constructor(
    owner: AttemptOwner,
    started: number,
    ended: (failed: boolean, reason: unknown) => void,
  ) {
    this.#owner = owner;
    this.started = started;
    this.deadline = started + owner.handlerTimeoutMs;
    this.#ended = ended;
  }

  signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** Marks the attempt finished; false when it had already finished (timed out or aborted). */
  settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#owner.attemptEnded(this);
    return true;
  }

  /** Ends the attempt with `reason` (timeout or close) and aborts its signal. */
  fail(reason: Error): void {
    if (!this.settle()) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.#ended(true, reason);
  }
}

/** What the handler gets besides the message. The signal is made on first read. */
class AttemptContext {
  readonly attempt: number;
  readonly #live: LiveAttempt;

  constructor(attempt: number, live: LiveAttempt) {
    this.attempt = attempt;
    this.#live = live;
  }

  get signal(): AbortSignal {
    return this.#live.signal();
  }
}
