import { setMaxListeners } from 'node:events';
import { EventEmitter } from 'eventemitter3';
import type { Consumer } from 'kafkajs';
import { BackpressureError, isBackpressureError, toError } from '../errors.js';
import type { TopicPartition } from '../shared/topic-partition.js';
import { abortable, duration, signal as validSignal } from '../shared/validate.js';
import { Admitter } from './admission/admitter.js';
import { InFlightBudget } from './admission/budget.js';
import { Partitions, type PartitionState } from './admission/partitions.js';
import type { Delivery } from './dispatch/delivery.js';
import type { Dispatcher } from './dispatch/dispatcher.js';
import { Pipeline } from './dispatch/pipeline.js';
import type { AttemptObserver, RunnerHooks } from './dispatch/runner.js';
import type { ConsumerEvents, ErrorEvent } from './events.js';
import { Circuit, type CircuitState } from './failure/breaker.js';
import { ConcurrencyControl } from './flow/concurrency.js';
import { FlowController, type PauseReason } from './flow/controller.js';
import { DownstreamLagWatch } from './flow/downstream-lag.js';
import { LatencyTrigger } from './flow/latency-trigger.js';
import { LatencyWindow } from './flow/latency-window.js';
import { QueueFullTrigger } from './flow/queue-full.js';
import { clientOf } from './kafka/kafkajs.js';
import type { ConsumerClient } from './kafka/port.js';
import { Committer } from './offsets/committer.js';
import { lagSample, partitionSnapshots, type PartitionSnapshot } from './snapshot.js';
import { sleepUnless } from '../shared/sleep.js';
import { restoreProgress } from './offsets/restore.js';
import {
  resolveOptions,
  type BackpressureConsumerOptions,
  type ResolvedOptions,
} from './options.js';
import { brand, isInstance } from '../shared/brand.js';

export type ConsumerState = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

export type { PartitionSnapshot } from './snapshot.js';

export interface CloseOptions {
  /**
   * How long to wait for in-flight work before abandoning it (it is redelivered later).
   * @default the consumer's `closeDrainTimeoutMs` option (30000)
   */
  readonly drainTimeoutMs?: number;
  /**
   * Aborting it ends the wait for in-flight work at once, as the drain
   * timeout does: the work is abandoned (handlers' signals abort with this
   * signal's reason) and redelivered later. The commit and disconnect still
   * happen; `close()` does not reject for it.
   * @default none
   */
  readonly signal?: AbortSignal;
}

/** Options of `start()`. */
export interface StartOptions {
  /**
   * Aborting it before `start()` resolved gives up starting: the consumer
   * closes (the step under way finishes, no further one is taken, the client
   * disconnects and leaves the group), then `start()` rejects with
   * `signal.reason`. Once started, aborting it changes nothing.
   * @default none
   */
  readonly signal?: AbortSignal;
}

/** Options of the promise helpers (`onIdle()`, `onDrained()`). */
export interface WaitOptions {
  /**
   * Aborting it rejects the wait with `signal.reason`; the consumer is not affected.
   * @default none
   */
  readonly signal?: AbortSignal;
}

/** Lets `registerMetrics` keep handler-duration histograms without a per-message event; works across copies of the package. */
export const OBSERVE_ATTEMPTS = Symbol.for('kafkajs-backpressure.observe-attempts');

/**
 * Wraps a KafkaJS consumer you created so that it consumes as fast as the
 * handler allows and no faster, without losing a message.
 *
 * The data flows one way, and each stage is a module of its own: the client
 * port (`kafka/`) hands batches to the admitter (`admission/`), which holds
 * them to the in-flight budget and fair shares and passes each message to
 * the dispatcher (`dispatch/`): lanes keep the order, workers run every
 * message down one path (shed, deserialize, handler under its deadline and
 * the breaker), and failures follow one policy (`failure/`). Done offsets
 * go to the tracker and the committer (`offsets/`). Queue depth, latency,
 * the breaker and the next stage's lag are triggers of the flow controller
 * (`flow/`), which alone pauses and resumes partitions. This class wires
 * them and answers the public API.
 */
export class BackpressureConsumer<T = Buffer | null> extends EventEmitter<ConsumerEvents> {
  static {
    brand(this, 'BackpressureConsumer');
  }

  /** True for a BackpressureConsumer from any copy of the package (ESM and CommonJS, two versions). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return isInstance(this, value);
  }

  readonly #options: ResolvedOptions<T>;
  readonly #client: ConsumerClient;
  readonly #flow: FlowController;
  readonly #budget: InFlightBudget;
  readonly #partitions: Partitions;
  readonly #queue: QueueFullTrigger;
  /** Dispatcher and runners: where admitted messages are run. */
  readonly #pipeline: Pipeline;
  readonly #dispatcher: Dispatcher;
  readonly #admitter: Admitter;
  readonly #circuit: Circuit;
  readonly #latency: LatencyWindow;
  readonly #latencyTrigger: LatencyTrigger | undefined;
  readonly #concurrency: ConcurrencyControl;
  readonly #committer: Committer;
  readonly #downstream: DownstreamLagWatch | undefined;
  /** Aborted on close when in-flight work is abandoned. */
  readonly #closeController = new AbortController();
  /** Aborted by a signal given to any `close()` call: ends the drain wait. */
  readonly #closeCut = new AbortController();
  readonly #timers: NodeJS.Timeout[] = [];
  #state: ConsumerState = 'idle';
  #groupId = '';
  #closePromise: Promise<void> | undefined;
  /** Settles once start()'s client steps are over (either way). */
  #starting: Promise<void> = Promise.resolve();

  /**
   * @param consumer a KafkaJS `Consumer` (`kafka.consumer({ groupId })`), or
   *   any other client behind the {@link ConsumerClient} port
   */
  constructor(consumer: Consumer | ConsumerClient, options: BackpressureConsumerOptions<T>) {
    super();
    const o = (this.#options = resolveOptions(options));
    this.#client = clientOf(consumer, o.admin);
    const emit = this.#emit;
    this.#flow = new FlowController(this.#client, {
      paused: (change) => emit('flow.paused', change),
      resumed: (change) => emit('flow.resumed', change),
    });
    this.#budget = new InFlightBudget(o.maxInFlight, o.maxInFlightBytes, o.resumeThreshold);
    this.#partitions = new Partitions(o.ordering, o.clock);
    this.#queue = new QueueFullTrigger(
      this.#budget,
      this.#partitions,
      this.#flow,
      o.resumeThreshold,
      (full, event) => emit(full ? 'queue.full' : 'queue.drained', event),
    );
    this.#latency = new LatencyWindow(o.clock, o.latencyWindowMs);
    this.#circuit = new Circuit(
      o.circuitBreaker,
      (state) => this.#circuitChanged(state),
      (error) => this.#isRetriable(toError(error)),
      o.handlerTimeoutMs,
    );
    const hooks: RunnerHooks = {
      emit,
      settledListened: () => this.listenerCount('handler.settled') > 0,
      settle: (delivery, done) => this.#settle(delivery, done),
      hold: (state, reason, on) => this.#hold(state, reason, on),
      abandoned: (delivery) => delivery.state.revoked || this.#closeController.signal.aborted,
      // Cut short when the consumer abandons work on close.
      sleep: (ms) => sleepUnless(ms, this.#closeController.signal),
      isRetriable: (error) => this.#isRetriable(error),
      groupId: () => this.#groupId,
      error: (error) => this.#error(error, 'handler'),
    };
    const measured = (durationMs: number, now: number): void => {
      this.#latency.record(durationMs, now);
      this.#latencyTrigger?.record(durationMs, now);
      this.#concurrency.record(durationMs, now);
    };
    this.#pipeline = new Pipeline(
      o as ResolvedOptions<unknown>,
      this.#partitions,
      this.#circuit,
      hooks,
      measured,
      () => this.#state === 'closing' || this.#state === 'closed',
    );
    this.#dispatcher = this.#pipeline.dispatcher;
    this.#concurrency = new ConcurrencyControl(o, this.#dispatcher, (event) =>
      emit('concurrency.changed', event),
    );
    this.#committer = new Committer(this.#client, o.logger, o, {
      partitions: () => this.#partitions.values(),
      live: () => this.#state !== 'idle' && this.#state !== 'closed',
      groupId: () => this.#groupId,
      committed: (event) => emit('offsets.committed', event),
      failed: (error) => this.#error(error, 'commit'),
    });
    this.#admitter = new Admitter(
      o,
      this.#budget,
      this.#partitions,
      this.#flow,
      this.#queue,
      this.#dispatcher,
      {
        closing: () => this.#state === 'closing' || this.#state === 'closed',
        draining: () =>
          emit('group.rebalance', { phase: 'draining', assigned: [], revoked: [], dropped: 0 }),
        commitAll: () => this.#committer.commit('all'),
      },
    );
    this.#latencyTrigger = o.latency
      ? new LatencyTrigger(o.latency, o.clock, this.#flow, {
          probing: (probes) => this.#concurrency.latencyPaused(probes),
          demand: () => this.#dispatcher.demand,
          baselineMs: () => this.#concurrency.baselineMs,
          limitSettling: (since) => this.#concurrency.limitSettling(since),
          changed: (high, event) => emit(high ? 'latency.high' : 'latency.normal', event),
        })
      : undefined;
    this.#downstream = o.downstreamLag
      ? new DownstreamLagWatch(o.downstreamLag, {
          changed: ({ paused, status, lag, reason }) => {
            if (paused) this.#flow.add('downstream-lag');
            else this.#flow.remove('downstream-lag');
            emit(paused ? 'downstream.lag-high' : 'downstream.lag-normal', { status, lag, reason });
          },
          error: (error) => this.#error(error, 'downstream-lag'),
        })
      : undefined;
    // One abort listener per sleeping retry: many by design.
    setMaxListeners(0, this.#closeController.signal);
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

  /** Handlers (and deserializers) running right now. */
  get activeHandlers(): number {
    return this.#dispatcher.active;
  }

  /** The concurrency limit in force (changes with adaptive concurrency and the circuit). */
  get concurrency(): number {
    return this.#dispatcher.concurrency;
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
    return this.#partitions.consumedCounts();
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
    return partitionSnapshots(this.#partitions, this.#flow, Date.now());
  }

  /**
   * Connects, subscribes and starts consuming. Resolves once the client runs.
   * With `signal`, see {@link StartOptions.signal}.
   */
  async start(options: StartOptions = {}): Promise<void> {
    const signal = validSignal('signal', options.signal);
    signal?.throwIfAborted();
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
    const stopping = () => (this.#state as ConsumerState) !== 'starting';
    const steps = this.#client.start({
      topics: o.topics,
      fromBeginning: o.fromBeginning,
      partitionsConsumedConcurrently: o.partitionsConsumedConcurrently,
      stopping,
      hooks: {
        batch: (batch) => this.#admitter.batch(batch),
        assigned: (groupId, partitions) => this.#assigned(groupId, partitions),
        // Commit what is done at once, outside the queue (see Committer.now).
        rebalancing: () => void this.#committer.now('all'),
        crashed: (error) => this.#error(error, 'consumer-crash'),
        failed: (error, during) => this.#error(error, during),
      },
    });
    this.#starting = steps.then(
      () => undefined,
      () => undefined,
    );
    if (signal === undefined) await steps;
    else await this.#startUnless(steps, signal);
    if (stopping()) return;
    this.#every(o.commitIntervalMs, () => void this.#committer.tick());
    const trigger = this.#latencyTrigger;
    if (trigger) this.#every(trigger.intervalMs, () => trigger.check());
    if (o.adaptiveConcurrency) {
      this.#every(o.adaptiveConcurrency.intervalMs, () =>
        this.#concurrency.adapt(o.clock.now(), this.#dispatcher.demand),
      );
    }
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

  /** Resolves when nothing is in flight; with `signal`, rejects with its reason when it aborts first. */
  async onIdle(options: WaitOptions = {}): Promise<void> {
    const budget = this.#budget;
    await budget.until(() => budget.messages === 0, validSignal('signal', options.signal));
  }

  /**
   * Resolves when in-flight work is at or below the low mark (the queue is
   * not full); with `signal`, rejects with its reason when it aborts first.
   */
  async onDrained(options: WaitOptions = {}): Promise<void> {
    const budget = this.#budget;
    await budget.until(() => budget.low(), validSignal('signal', options.signal));
  }

  /** Commits every done offset now (it also happens every `commitIntervalMs`). */
  commit(): Promise<void> {
    return this.#committer.commit();
  }

  /**
   * Stops fetching, lets in-flight work finish (up to `drainTimeoutMs`),
   * commits, and disconnects the client. Work still running after the
   * timeout is abandoned (its signal aborted) and redelivered later.
   * Safe to call more than once, and from inside a handler.
   */
  close(options: CloseOptions = {}): Promise<void> {
    let signal: AbortSignal | undefined;
    try {
      signal = validSignal('signal', options.signal);
      if (this.#closePromise === undefined) {
        // Checked before the close is stored: a bad value (an unset env var
        // gives NaN) rejects this call only, and a later valid close() works.
        const timeoutMs = duration(
          'drainTimeoutMs',
          options.drainTimeoutMs,
          this.#options.closeDrainTimeoutMs,
          { min: 0 },
        );
        this.#closePromise = this.#close(timeoutMs);
      }
    } catch (error) {
      return Promise.reject(error as Error);
    }
    if (signal !== undefined) this.#cutCloseOn(signal, this.#closePromise);
    return this.#closePromise;
  }

  /** `await using consumer = new BackpressureConsumer(...)`: `close()` with its defaults. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(timeoutMs: number): Promise<void> {
    const wasStarted = this.#state !== 'idle';
    this.#setState('closing');
    // Nothing new is admitted from here; batches already delivered stop at the next message.
    this.#flow.add('closing');
    this.#budget.wakeAll();
    // Let go of the caller first: close() may be awaited from inside a handler,
    // and that handler is part of what is being drained.
    await Promise.resolve();
    const cut = this.#closeCut.signal;
    await this.#budget.within(
      () => this.#budget.messages === 0 || cut.aborted,
      timeoutMs,
      this.#options.clock,
    );
    if (this.#budget.messages > 0) {
      // Timed out, or a close() signal aborted: the same abandonment.
      const reason = cut.aborted
        ? toError(cut.reason)
        : new BackpressureError(
            'ERR_DRAIN_TIMEOUT',
            `In-flight work did not finish within ${timeoutMs} ms of close().`,
          );
      this.#closeController.abort(reason);
      this.#pipeline.abortAll(reason);
      this.#circuit.wakeAll();
    }
    this.#pipeline.stop();
    for (const timer of this.#timers) clearInterval(timer);
    this.#committer.stop();
    this.#downstream?.stop();
    if (wasStarted) {
      await this.#starting;
      await this.#committer.commit('all');
      try {
        await this.#client.disconnect();
      } catch (error) {
        this.#error(toError(error), 'close');
      }
    }
    this.#circuit.shutdown();
    this.#setState('closed');
  }

  /**
   * Waits for start()'s client steps unless `signal` aborts first; then
   * closes (the client takes no further step and disconnects) and rejects
   * with the signal's reason.
   */
  async #startUnless(steps: Promise<void>, signal: AbortSignal): Promise<void> {
    try {
      await abortable(steps, signal);
    } catch (error) {
      if (!signal.aborted) throw error;
      // Already closing (close() came first): the abort still rejects start().
      await this.close();
      throw signal.reason;
    }
    // The steps finished, but an abort that came with their last step wins.
    if (signal.aborted && (this.#state as ConsumerState) === 'starting') {
      await this.close();
      throw signal.reason;
    }
  }

  /** A signal given to any `close()` call ends the drain wait (see {@link CloseOptions.signal}). */
  #cutCloseOn(signal: AbortSignal, closed: Promise<void>): void {
    const cut = this.#closeCut;
    if (cut.signal.aborted || this.#state === 'closed') return;
    const onAbort = (): void => {
      cut.abort(signal.reason);
      // Wakes the drain wait, which rechecks its condition.
      this.#budget.wakeAll();
    };
    if (signal.aborted) {
      onAbort();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    const detach = (): void => signal.removeEventListener('abort', onAbort);
    closed.then(detach, detach);
  }

  /** @internal Used by `registerMetrics`: see {@link OBSERVE_ATTEMPTS}. */
  [OBSERVE_ATTEMPTS](observer: AttemptObserver): () => void {
    return this.#pipeline.observe(observer);
  }

  #assigned(groupId: string, partitions: readonly TopicPartition[]): void {
    this.#groupId = groupId;
    const change = this.#partitions.assign(partitions);
    // Partitions new to this member learn what their last owner finished.
    const fresh = change.assigned
      .map((tp) => this.#partitions.of(tp.topic, tp.partition))
      .filter((s) => s.tracker.nextOffset === undefined && s.restoring === undefined);
    restoreProgress(this.#client, groupId, fresh, this.#options.logger);
    this.#flow.assign(change.assigned);
    this.#admitter.assigned();
    this.#emit('group.rebalance', { phase: 'assigned', ...change });
  }

  /** Settles a message's accounts: offsets, the in-flight budget and what waits on it. */
  #settle(delivery: Delivery, done: boolean): void {
    const state = delivery.state;
    if (done) {
      state.consumed.count += 1;
      if (!state.revoked) {
        state.tracker.complete(delivery.offset);
        this.#committer.done(state);
      }
    }
    // Abandoned (on close) stays pending in the tracker: no commit passes it.
    this.#budget.release(delivery.bytes);
    this.#partitions.settled(state, delivery.bytes);
    this.#admitter.released(state);
    this.#queue.check();
    // The next part of a failed batch starts once this one's messages ended.
    delivery.segments?.ended();
  }

  /** Counts messages holding a partition for `reason`; the reason lasts while any remains. */
  #hold(state: PartitionState, reason: PauseReason, on: boolean): void {
    if (!this.#partitions.hold(state, on ? 1 : -1)) return;
    if (on) {
      this.#flow.add(reason, state);
      // This partition's work stops counting toward the low mark.
      this.#queue.check();
    } else {
      this.#flow.remove(reason, state);
    }
  }

  #isRetriable(error: Error): boolean {
    if (isBackpressureError(error) && error.code === 'ERR_HANDLER_FAILED' && !error.retriable)
      return false;
    if ((error as { retriable?: unknown }).retriable === false) return false;
    const predicate = this.#options.retry.isRetriable;
    return predicate ? predicate(error) : true;
  }

  #circuitChanged(state: CircuitState): void {
    this.#pipeline.circuitChanged(state);
    this.#concurrency.circuitChanged(state);
    // Open: every partition pauses. Half-open: fetching resumes so there is
    // something to probe with; opossum lets one call through at a time.
    if (state === 'open') this.#flow.add('circuit');
    else this.#flow.remove('circuit');
    this.#emit(`circuit.${state}`, { state });
  }

  #sampleLag(): void {
    if (this.#state !== 'running' || this.listenerCount('lag.sample') === 0) return;
    this.#emit('lag.sample', lagSample(this.#groupId, this.partitions()));
  }

  #setState(state: ConsumerState): void {
    this.#state = state;
    if (state !== 'idle') this.#emit('consumer.state', { state });
  }

  /**
   * Emits an event. A listener that throws is reported as `consumer.error`
   * and never breaks the pipeline that emitted it.
   */
  readonly #emit = <E extends keyof ConsumerEvents>(
    event: E,
    payload: Parameters<ConsumerEvents[E]>[0],
  ): void => {
    try {
      (this.emit as (event: E, payload: unknown) => boolean)(event, payload);
    } catch (error) {
      if (event === 'consumer.error') {
        this.#options.logger.error(
          { err: error },
          'kafkajs-backpressure: consumer.error listener threw',
        );
      } else {
        this.#error(toError(error), 'handler');
      }
    }
  };

  #error(error: Error, during: ErrorEvent['during']): void {
    this.#options.logger.error({ err: error, during }, 'kafkajs-backpressure: error');
    this.#emit('consumer.error', { error, during });
  }

  #every(ms: number, tick: () => void): void {
    const timer = setInterval(tick, ms);
    timer.unref();
    this.#timers.push(timer);
  }
}
