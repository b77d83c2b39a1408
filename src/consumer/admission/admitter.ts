import type { Clock } from '../../shared/clock.js';
import type { TopicPartition } from '../../shared/topic-partition.js';
import { Delivery, sizeOf } from '../dispatch/delivery.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import { laneKeyOf } from '../dispatch/lanes.js';
import type { FlowController } from '../flow/controller.js';
import type { QueueFullTrigger } from '../flow/queue-full.js';
import type { FetchedBatch } from '../kafka/port.js';
import type { OrderingMode } from '../options.js';
import type { InFlightBudget } from './budget.js';
import { budgetShare, holdsBudgetShare, overBudgetShare } from './fair-share.js';
import type { PartitionState, Partitions } from './partitions.js';

/** How often a waiting batch heartbeats and looks again. */
const HEARTBEAT_POLL_MS = 500;
/** How long a partition at its fair share waits in place for capacity before pausing. */
const FAIR_WAIT_MS = 250;

export interface AdmitterSettings {
  readonly ordering: OrderingMode;
  readonly resumeThreshold: number;
  readonly rebalanceDrainTimeoutMs: number;
  readonly clock: Clock;
}

export interface AdmitterHooks {
  /** True once close() began. */
  closing(): boolean;
  /** A rebalance was noticed: in-flight work is drained and committed before the client rejoins. */
  draining(): void;
  /** Commits every owned partition's position (after a drain). */
  commitAll(): Promise<void>;
}

/**
 * Admits fetched messages into the in-flight budget and hands them to the
 * dispatcher, in offset order per partition. While capacity is short it
 * waits in place, heartbeating, so a slow downstream never costs the
 * group membership (kafkajs#1083); a rebalance noticed then is drained and
 * committed before the client rejoins. Each message's offset is resolved
 * to the client at admission, so the next fetch overlaps processing:
 * commits come from the offset tracker, never from the client.
 */
export class Admitter {
  readonly #settings: AdmitterSettings;
  readonly #budget: InFlightBudget;
  readonly #partitions: Partitions;
  readonly #flow: FlowController;
  readonly #queue: QueueFullTrigger;
  readonly #dispatcher: Dispatcher;
  readonly #hooks: AdmitterHooks;
  /** Set while a noticed rebalance drains: admission stops. */
  #rebalancing = false;
  /** A drain already ran for the rebalance in progress; reset by the next assignment. */
  #drained = false;

  constructor(
    settings: AdmitterSettings,
    budget: InFlightBudget,
    partitions: Partitions,
    flow: FlowController,
    queue: QueueFullTrigger,
    dispatcher: Dispatcher,
    hooks: AdmitterHooks,
  ) {
    this.#settings = settings;
    this.#budget = budget;
    this.#partitions = partitions;
    this.#flow = flow;
    this.#queue = queue;
    this.#dispatcher = dispatcher;
    this.#hooks = hooks;
  }

  /** A new assignment is in force: the next rebalance gets its own drain. */
  assigned(): void {
    this.#drained = false;
    this.#budget.wakeAll();
  }

  /** The client's batch handler. */
  async batch(batch: FetchedBatch): Promise<void> {
    const state = this.#partitions.of(batch.topic, batch.partition);
    // Newly assigned: which of its offsets the last owner finished is being read.
    if (state.restoring !== undefined) await state.restoring;
    state.highWatermark = batch.highWatermark;
    state.fetchedFrom ??= Number(batch.messages[0]?.offset ?? batch.highWatermark);
    const mode = this.#settings.ordering;
    const budget = this.#budget;
    let complete = true;
    // Nothing in the loop yields except the capacity wait, and no user code
    // runs except queue.full listeners, so whether to stop admitting can only
    // change at the start, after that wait and after that event.
    let checkStop = true;
    // The last offset taken and not yet resolved to the client. Resolving
    // before each wait and at the end, rather than per message, is the same
    // to the client: it reads resolved offsets only after the handler
    // returns or while it waits.
    let unresolved: string | undefined;
    // Past the budget's low mark a partition admits no more than its fair
    // share while other partitions could use the room.
    const capShare = this.#partitions.size > 1;

    for (const message of batch.messages) {
      const offset = Number(message.offset);
      if (state.tracker.seen(offset)) {
        // Fetched again after a rejoin while we still hold it: already running or done.
        unresolved = message.offset;
        continue;
      }
      if (state.tracker.markedDone(offset)) {
        // Done by the last owner above its committed offset: counted done, not run again.
        state.tracker.admit(offset, message.timestamp);
        state.tracker.complete(offset);
        unresolved = message.offset;
        continue;
      }
      if (checkStop) {
        if (this.#stop(state, batch)) {
          complete = false;
          break;
        }
        checkStop = false;
      }
      const bytes = sizeOf(message);
      let fits = budget.fits(bytes);
      let capped = fits && capShare && this.#overShare(state);
      let waited = false;
      // Checked again after every wait: batches of other partitions are
      // admitted side by side and may have taken the room meanwhile.
      while (!fits || capped) {
        if (!fits) this.#queue.reached();
        if (unresolved !== undefined) {
          batch.resolve(unresolved);
          unresolved = undefined;
        }
        if (!(await this.#waitForRoom(state, batch, bytes, capped))) {
          complete = false;
          break;
        }
        waited = true;
        fits = budget.fits(bytes);
        capped = fits && capShare && this.#overShare(state);
      }
      if (!complete) break;
      if (waited && this.#stop(state, batch)) {
        complete = false;
        break;
      }
      state.tracker.admit(offset, message.timestamp);
      budget.add(bytes);
      this.#partitions.admitted(state, bytes);
      unresolved = message.offset;
      if (!this.#queue.full && budget.full()) {
        this.#queue.reached();
        // Listeners of queue.full run synchronously and may pause or close.
        checkStop = true;
      }
      const laneKey = mode === 'key' ? laneKeyOf(message.key) : '';
      this.#dispatcher.push(new Delivery(state, message, offset, bytes, laneKey));
    }

    if (unresolved !== undefined) batch.resolve(unresolved);
    if (complete && batch.messages.length > 0) {
      // Covers transaction markers after the last message: without it the
      // commit position would sit on a control record forever.
      state.tracker.advanceTo(batch.lastOffset + 1);
      batch.resolve(String(batch.lastOffset));
    }
    // While every partition is held for capacity, keep the fetch loop here
    // rather than idling in the client: our heartbeats then notice a
    // rebalance first, and in-flight work is drained and committed before
    // rejoining.
    if (this.#queue.full) {
      await this.#heartbeatWhile(
        () => this.#queue.full,
        batch,
        () => this.#queue.atLowMark(),
      );
    }
  }

  /**
   * Waits for room for one message of `bytes`. A partition already holding
   * its share of a contended budget waits in place only briefly: capacity
   * usually frees within milliseconds. Still blocked after FAIR_WAIT_MS, it
   * pauses (`partition-full`) and the rest of its batch is fetched again
   * later, so other partitions' batches get the room that frees up. False
   * when admission from this batch stops.
   */
  async #waitForRoom(
    state: PartitionState,
    batch: FetchedBatch,
    bytes: number,
    capped: boolean,
  ): Promise<boolean> {
    const clock = this.#settings.clock;
    const budget = this.#budget;
    const blocked = capped
      ? () => this.#holdsShare(state) || !budget.fits(bytes)
      : () => !budget.fits(bytes);
    // Wake when a chunk has freed (the low mark), not at every finished
    // message: admitting one message per wake-up costs a timer, a heartbeat
    // and a promise each.
    const wakeWhen = capped
      ? () => !this.#holdsShare(state) && budget.fits(bytes)
      : () => this.#queue.atLowMark() && budget.fits(bytes);
    for (;;) {
      const giveUpAt =
        state.inFlight >= this.#share() ? clock.now() + FAIR_WAIT_MS : Number.POSITIVE_INFINITY;
      const ok = await this.#heartbeatWhile(
        () => blocked() && clock.now() < giveUpAt,
        batch,
        wakeWhen,
        giveUpAt,
      );
      if (!ok || state.revoked || this.#stop(state, batch)) return false;
      if (!blocked()) return true;
      if (this.#holdsShare(state)) {
        // Only the partition's own finished work lifts this pause, so it is
        // taken only while some of that work remains: a partition whose work
        // all finished during the wait would stay paused for good.
        this.#partitions.shareFull(state, true);
        this.#flow.add('partition-full', state);
        // Its work stops counting toward the queue-full low mark.
        this.#queue.check();
        return false;
      }
      // Its own work drained meanwhile: keep waiting in place.
    }
  }

  /** A settled message may end its partition's `partition-full` pause. */
  released(state: PartitionState): void {
    if (state.shareFull && !this.#holdsShare(state)) {
      this.#partitions.shareFull(state, false);
      this.#flow.remove('partition-full', state);
    }
  }

  #share(): number {
    return budgetShare(this.#budget.maxMessages, this.#partitions.size);
  }

  #overShare(state: PartitionState): boolean {
    return overBudgetShare(state.inFlight, this.#share(), this.#budget.low());
  }

  #holdsShare(state: PartitionState): boolean {
    return holdsBudgetShare(state.inFlight, this.#share(), this.#settings.resumeThreshold);
  }

  #stop(tp: TopicPartition, batch: FetchedBatch): boolean {
    if (this.#hooks.closing() || this.#rebalancing || !batch.active()) return true;
    if (!this.#flow.isPaused(tp.topic, tp.partition)) return false;
    // Capacity is waited for in place; any other reason stops this batch here.
    return this.#flow.reasonsFor(tp).some((reason) => reason !== 'queue-full');
  }

  /**
   * Waits while `blocked()` holds, heartbeating so the group does not evict
   * us. When the heartbeat reports a rebalance, drains and commits before
   * the client rejoins. False when admission should stop.
   */
  async #heartbeatWhile(
    blocked: () => boolean,
    batch: FetchedBatch,
    wakeWhen: () => boolean,
    until = Number.POSITIVE_INFINITY,
  ): Promise<boolean> {
    const clock = this.#settings.clock;
    while (blocked()) {
      if (!batch.active() || this.#hooks.closing()) return false;
      const left = until - clock.now();
      await this.#budget.changedWithin(Math.max(1, Math.min(HEARTBEAT_POLL_MS, left)), wakeWhen);
      if ((await batch.heartbeat()) === 'rebalancing') {
        await this.#drain(batch);
        return false;
      }
    }
    return true;
  }

  async #drain(batch: FetchedBatch): Promise<void> {
    // Every batch waiting in the client meets the same rebalance; one drain is enough.
    if (this.#drained) return;
    this.#drained = true;
    this.#rebalancing = true;
    try {
      this.#hooks.draining();
      const clock = this.#settings.clock;
      const deadline = clock.now() + this.#settings.rebalanceDrainTimeoutMs;
      while (this.#budget.messages > 0 && clock.now() < deadline) {
        await this.#budget.changedWithin(
          Math.min(HEARTBEAT_POLL_MS, Math.max(1, deadline - clock.now())),
          () => this.#budget.messages === 0,
        );
        await batch.heartbeat().catch(() => undefined);
      }
      await this.#hooks.commitAll();
    } finally {
      this.#rebalancing = false;
    }
  }
}
