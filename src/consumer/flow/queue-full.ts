import type { InFlightBudget } from '../admission/budget.js';
import type { Partitions } from '../admission/partitions.js';
import type { QueueEvent } from '../events.js';
import type { FlowController } from './controller.js';

/**
 * The queue-full trigger: every partition pauses (reason `queue-full`)
 * when in-flight work reaches the budget (the high mark) and resumes at the
 * low mark.
 *
 * Work of partitions held at a failure (a dead letter that cannot be
 * written, a message retried without a DLQ), or paused at their share of
 * the budget because their handlers are slow, waits for that failure or
 * those handlers, not for capacity. Counted like the rest it kept
 * queue-full, and so every other partition, paused until it cleared, with
 * admission waiting for a drain that could not come. So the low mark
 * applies to the capacity that work leaves, and to the work that can
 * drain. Admission still counts everything: the in-flight bound holds.
 */
export class QueueFullTrigger {
  readonly #budget: InFlightBudget;
  readonly #partitions: Partitions;
  readonly #flow: FlowController;
  readonly #resumeThreshold: number;
  readonly #changed: (full: boolean, event: QueueEvent) => void;
  #full = false;

  constructor(
    budget: InFlightBudget,
    partitions: Partitions,
    flow: FlowController,
    resumeThreshold: number,
    changed: (full: boolean, event: QueueEvent) => void,
  ) {
    this.#budget = budget;
    this.#partitions = partitions;
    this.#flow = flow;
    this.#resumeThreshold = resumeThreshold;
    this.#changed = changed;
  }

  get full(): boolean {
    return this.#full;
  }

  /** At or below the low mark, held work left out. */
  atLowMark(): boolean {
    const budget = this.#budget;
    // Asked at every release while an admission waits: without held work it is the budget's own low mark.
    if (this.#partitions.waiting === 0) return budget.low();
    const held = this.#partitions.held();
    const fraction = this.#resumeThreshold;
    return (
      budget.messages - held.messages <= fraction * (budget.maxMessages - held.messages) &&
      budget.bytes - held.bytes <= fraction * (budget.maxBytes - held.bytes)
    );
  }

  /** Blocked on capacity, or the budget just filled up: pause everything. */
  reached(): void {
    if (!this.#full) this.#set(true);
  }

  /** After a release or a new hold: resume once at the low mark. */
  check(): void {
    if (this.#full && this.atLowMark()) this.#set(false);
  }

  #set(full: boolean): void {
    this.#full = full;
    const budget = this.#budget;
    const event = {
      messages: budget.messages,
      bytes: budget.bytes,
      maxMessages: budget.maxMessages,
      maxBytes: budget.maxBytes,
    };
    if (full) this.#flow.add('queue-full');
    else this.#flow.remove('queue-full');
    this.#changed(full, event);
  }
}
