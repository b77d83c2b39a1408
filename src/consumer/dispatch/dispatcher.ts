import type { LimitFunction } from 'p-limit';
import type { PartitionState, Partitions } from '../admission/partitions.js';
import { concurrencyShare } from '../admission/fair-share.js';
import type { Clock } from '../../shared/clock.js';
import { Batch, type Unit } from './batch.js';
import { Delivery } from './delivery.js';

/** With `batchHandler`: how batches are taken from the lanes. */
export interface BatchTaking {
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly maxWaitMs: number;
  /** Calls a batch gets before it is split (`retry.maxAttempts`). */
  readonly maxAttempts: number;
  readonly clock: Clock;
  /** True while lingering would only delay the end (closing): batches go as they are. */
  hurry(): boolean;
}

const joins = (unit: Unit): boolean => unit instanceof Delivery && !unit.alone;
const bytesOf = (unit: Unit): number => (unit instanceof Delivery ? unit.bytes : 0);

/** Messages a worker runs back to back without yielding, when handlers settle synchronously. */
const SYNC_RUN = 256;

/**
 * Runs one step of a message: its handler attempt, or whatever comes up
 * first (shedding, deserializing, a dead letter). Calls `free` exactly once,
 * as soon as the message no longer needs the worker: with `done` true when
 * the message is finished for good, false when it is parked (waiting for a
 * retry, the circuit, or a dead-letter write) and will come back through
 * {@link Dispatcher.requeue} or end through {@link Dispatcher.finished}.
 */
export type Step = (unit: Unit, free: (done: boolean) => void) => void;

/**
 * Hands runnable messages to workers, at most `concurrency` of them at
 * once. Workers pull: a worker that finishes a message takes the next
 * runnable one itself, so the common case asks p-limit for nothing per
 * message. p-limit bounds the workers, its `concurrency` follows the limit
 * in force, and a worker over a lowered limit leaves after its message.
 *
 * Fairness: partitions with runnable messages take turns, and while
 * several partitions have work in flight none runs more than its share of
 * the concurrency (the limit divided by the partitions with work in
 * flight, rounded up). A partition alone with work may go past that, but
 * past its share of the assignment (the limit divided by the assigned
 * partitions) only while a slot stays free for every other assigned
 * partition with nothing running: a slow partition, or a slow key, can
 * never hold every slot, so another partition's next message always finds
 * one, and the share rule takes over as the slow handlers end.
 *
 * With `batchHandler` a worker takes a batch where it would take a message
 * (see {@link LaneQueue.takeRun}), so the concurrency counts batches. A
 * partition whose runnable messages would make a short batch lingers, up
 * to `batch.maxWaitMs`, while other partitions are served.
 */
export class Dispatcher {
  readonly #limit: LimitFunction;
  readonly #partitions: Partitions;
  readonly #step: Step;
  /** Partitions with runnable messages, taken in turn from `#cursor`. */
  readonly #ring: PartitionState[] = [];
  #cursor = 0;
  /** Workers started and not yet gone. */
  #workers = 0;
  /** Workers running a step now. */
  #active = 0;
  /** Partitions with a step running now. */
  #runningPartitions = 0;
  /**
   * Set when a worker found runnable messages only in partitions at their
   * share: starting workers is pointless until a step ends, new work
   * arrives or the limit changes.
   */
  #blocked = false;
  readonly #batch: BatchTaking | undefined;
  /** Wakes workers when the earliest lingering partition's wait is over. */
  #lingerTimer: NodeJS.Timeout | undefined;
  #lingerDeadline = Number.POSITIVE_INFINITY;

  constructor(limit: LimitFunction, partitions: Partitions, step: Step, batch?: BatchTaking) {
    this.#limit = limit;
    this.#partitions = partitions;
    this.#step = step;
    this.#batch = batch;
  }

  /** Clears the linger timer (on close). */
  stop(): void {
    if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer);
    this.#lingerTimer = undefined;
    this.#lingerDeadline = Number.POSITIVE_INFINITY;
  }

  /** Steps running now: handler calls, deserializers, shedding. */
  get active(): number {
    return this.#active;
  }

  /** Steps running plus messages allowed to run now: what a larger limit could serve. */
  get demand(): number {
    let ready = 0;
    for (const state of this.#ring) ready += state.lanes.readyCount;
    return this.#active + ready;
  }

  get concurrency(): number {
    return this.#limit.concurrency;
  }

  set concurrency(value: number) {
    this.#limit.concurrency = value;
    this.#blocked = false;
    this.#wake();
  }

  /** An admitted message. */
  push(delivery: Delivery): void {
    const state = delivery.state;
    state.lanes.push(delivery);
    if (this.#batch !== undefined) state.lingerSince ??= this.#batch.clock.now();
    this.#ready(state);
    this.#blocked = false;
    this.#wake();
  }

  /** A parked message (or batch) may run again. */
  requeue(unit: Unit): void {
    const state = unit.state;
    state.lanes.requeue(unit);
    this.#ready(state);
    this.#blocked = false;
    this.#wake();
  }

  /** A parked message ended outside a worker (dead-lettered, or abandoned): its lane moves on. */
  finished(delivery: Delivery): void {
    const state = delivery.state;
    state.lanes.done(delivery);
    this.#ready(state);
    this.#blocked = false;
    this.#wake();
  }

  #ready(state: PartitionState): void {
    if (!state.inRing && state.lanes.hasReady) {
      state.inRing = true;
      this.#ring.push(state);
    }
  }

  /** Starts a worker when runnable work may be waiting and none is about to look. */
  #wake(): void {
    if (this.#ring.length === 0 || this.#blocked) return;
    if (this.#workers >= this.#limit.concurrency || this.#workers > this.#active) return;
    this.#workers += 1;
    void this.#limit(() => new Promise<void>((exit) => new Worker(this, exit).loop()));
  }

  /** The next message a worker may run now, taking partitions in turn within their shares. */
  take(): Unit | undefined {
    if (this.#workers > this.#limit.concurrency) return undefined;
    const ring = this.#ring;
    const concurrency = this.#limit.concurrency;
    const share = concurrencyShare(concurrency, this.#partitions.busy);
    const assigned = this.#partitions.size;
    const strictShare = concurrencyShare(concurrency, assigned);
    // Slots free once this take is done, and partitions with nothing running.
    const freeAfter = concurrency - this.#active - 1;
    const idle = assigned - this.#runningPartitions;
    for (let tries = ring.length; tries > 0 && ring.length > 0; tries -= 1) {
      if (this.#cursor >= ring.length) this.#cursor = 0;
      const state = ring[this.#cursor]!;
      if (!state.lanes.hasReady) {
        this.#leave(state);
        continue;
      }
      // Within its share of the assignment always; past it only within its
      // share of the busy partitions and with a slot left for each idle one
      // (this partition is running something, so it is not among them).
      if (state.running >= strictShare && (state.running >= share || freeAfter < idle)) {
        this.#cursor += 1;
        continue;
      }
      if (this.#batch !== undefined && this.#lingering(state, this.#batch)) {
        this.#cursor += 1;
        continue;
      }
      const delivery = this.#batch === undefined ? state.lanes.take()! : this.#takeBatch(state);
      if (state.running === 0) this.#runningPartitions += 1;
      state.running += 1;
      delivery.working = true;
      this.#active += 1;
      if (state.lanes.hasReady) this.#cursor += 1;
      else this.#leave(state);
      // Ramp up: more is runnable, so one more worker comes to look.
      this.#wake();
      return delivery;
    }
    if (ring.length > 0) this.#blocked = true;
    return undefined;
  }

  /**
   * Whether the partition's runnable messages wait for more: too few for a
   * full batch, and none of them has waited `maxWaitMs` yet. A batch or a
   * message put back after a failure never waits.
   */
  #lingering(state: PartitionState, batch: BatchTaking): boolean {
    const head = state.lanes.peek();
    if (head === undefined || !joins(head) || batch.maxWaitMs === 0) return false;
    if (state.lanes.size >= batch.maxMessages || state.bytes >= batch.maxBytes) return false;
    if (batch.hurry()) return false;
    const now = batch.clock.now();
    const deadline = (state.lingerSince ?? now) + batch.maxWaitMs;
    if (deadline <= now) return false;
    if (deadline < this.#lingerDeadline) {
      if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer);
      this.#lingerDeadline = deadline;
      this.#lingerTimer = setTimeout(() => {
        this.#lingerTimer = undefined;
        this.#lingerDeadline = Number.POSITIVE_INFINITY;
        this.#blocked = false;
        this.#wake();
      }, deadline - now);
      this.#lingerTimer.unref();
    }
    return true;
  }

  /** A batch from the partition's lanes, or the one message or batch put back first. */
  #takeBatch(state: PartitionState): Unit {
    const batch = this.#batch!;
    const run = state.lanes.takeRun(batch.maxMessages, batch.maxBytes, joins, bytesOf);
    const first = run[0]!;
    if (joins(first)) {
      // Whatever is left has waited since now at most.
      state.lingerSince = state.lanes.size > 0 ? batch.clock.now() : undefined;
    }
    if (run.length === 1) {
      if (first instanceof Delivery) first.alone = true;
      return first;
    }
    return new Batch(state, run as Delivery[], batch.maxAttempts);
  }

  #leave(state: PartitionState): void {
    state.inRing = false;
    this.#ring.splice(this.#cursor, 1);
  }

  /** @internal A worker's step is over: done (its lane moves on) or parked. A batch's messages end through {@link finished}. */
  released(delivery: Unit, done: boolean): void {
    const state = delivery.state;
    state.running -= 1;
    if (state.running === 0) this.#runningPartitions -= 1;
    delivery.working = false;
    this.#active -= 1;
    this.#blocked = false;
    if (done) {
      state.lanes.done(delivery);
      this.#ready(state);
    }
  }

  /** @internal */
  run(delivery: Unit, free: (done: boolean) => void): void {
    this.#step(delivery, free);
  }

  /** @internal */
  exited(): void {
    this.#workers -= 1;
    // Work may have become runnable between this worker's last look and now.
    this.#wake();
  }
}

/** Runs messages one after another until nothing is runnable for it. */
class Worker {
  readonly #dispatcher: Dispatcher;
  readonly #exit: () => void;
  #current: Unit | undefined;
  /** Inside `loop`'s call of the step: a free() then continues the loop instead of recursing. */
  #calling = false;
  #freedDuringCall = false;

  constructor(dispatcher: Dispatcher, exit: () => void) {
    this.#dispatcher = dispatcher;
    this.#exit = exit;
  }

  readonly #free = (done: boolean): void => {
    const delivery = this.#current!;
    this.#current = undefined;
    this.#dispatcher.released(delivery, done);
    if (this.#calling) this.#freedDuringCall = true;
    else this.loop();
  };

  loop(): void {
    const dispatcher = this.#dispatcher;
    for (let run = 0; ; run += 1) {
      if (run === SYNC_RUN) {
        // Handlers that settle synchronously would otherwise hold the event
        // loop (and the group's heartbeats) for the whole queue.
        setImmediate(() => this.loop());
        return;
      }
      const delivery = dispatcher.take();
      if (delivery === undefined) {
        this.#exit();
        dispatcher.exited();
        return;
      }
      this.#current = delivery;
      this.#calling = true;
      this.#freedDuringCall = false;
      dispatcher.run(delivery, this.#free);
      this.#calling = false;
      if (!this.#freedDuringCall) return;
    }
  }
}
