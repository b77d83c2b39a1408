import { toError } from '../../errors.js';
import { isThenable } from '../../shared/thenable.js';
import type { EvidenceMark } from '../failure/evidence.js';
import type { PartitionState } from '../admission/partitions.js';
import type { BatchHandler, BatchResult, InboundMessage, MessageHandler } from '../message.js';
import type { Delivery } from './delivery.js';
import type { LaneItem } from './lanes.js';

/** What a worker runs: one message, or (with `batchHandler`) a batch of them. */
export type Unit = Delivery | Batch;

/**
 * Messages of one partition that go to the batch handler in one call,
 * taken together from their lanes (see `LaneQueue.takeRun`): each stays
 * out in its lane until it is done, so the ordering mode holds between
 * batches. A batch of one message is never made: that message runs the
 * per-message path, with the batch handler called on it alone.
 */
export class Batch implements LaneItem {
  /** Not in a lane of its own: its messages are in theirs. */
  readonly laneKey = '';
  readonly state: PartitionState;
  deliveries: Delivery[];
  /** Calls it gets before it is split: `retry.maxAttempts` as formed, 1 for a half. */
  readonly maxAttempts: number;
  /** Charged calls so far. */
  attempts = 0;
  /** Shedding and deserializing are done. */
  prepared: boolean;
  working = false;
  /** Failed while the circuit was not closed: its calls no longer count, and it waits behind fresh work. */
  blamed = false;
  /** Where its evidence begins: set when it (or the batch it came from) first failed. */
  mark: EvidenceMark | undefined;
  /** The parts of a failed batch it belongs to, run one after another. */
  segments: Segments | undefined = undefined;

  constructor(
    state: PartitionState,
    deliveries: Delivery[],
    maxAttempts: number,
    prepared = false,
    mark?: EvidenceMark,
  ) {
    this.state = state;
    this.deliveries = deliveries;
    this.maxAttempts = maxAttempts;
    this.prepared = prepared;
    this.mark = mark;
  }
}

/**
 * The parts of a failed batch (halves, or messages to retry alone), run one
 * after another in offset order: the next starts once every message of the
 * one before has ended (done, dead-lettered or abandoned), so a split never
 * lets a key's later message overtake an earlier one.
 */
export class Segments {
  readonly #start: (part: Unit) => void;
  readonly #queue: Unit[] = [];
  /** Messages of the running part not ended yet. */
  #remaining = 0;

  constructor(start: (part: Unit) => void) {
    this.#start = start;
  }

  /** Runs `parts` next, in order, ahead of parts queued before (the running part was split). */
  split(parts: readonly Unit[]): void {
    this.#queue.unshift(...parts);
    this.#remaining = 0;
    this.#next();
  }

  /** One message of the running part ended. */
  ended(): void {
    this.#remaining -= 1;
    if (this.#remaining === 0) this.#next();
  }

  #next(): void {
    const part = this.#queue.shift();
    if (part === undefined) return;
    if (part instanceof Batch) {
      part.segments = this;
      this.#remaining = part.deliveries.length;
      for (const d of part.deliveries) d.segments = this;
    } else {
      part.segments = this;
      this.#remaining = 1;
    }
    this.#start(part);
  }
}

/** `batchHandler` seen as a per-message handler: the path a message alone takes. */
export function singleCall<T>(batchHandler: BatchHandler<T>): MessageHandler<T> {
  const check = (result: BatchResult<T> | void): void => {
    const failed = result?.failed;
    if (failed !== undefined && failed.length > 0) throw toError(failed[0]!.error);
  };
  return (message, context) => {
    const result = batchHandler([message], context);
    if (isThenable(result)) return (result as Promise<BatchResult<T> | void>).then(check);
    check(result as BatchResult<T> | void);
    return undefined;
  };
}

/**
 * The messages a batch handler's result names as failed, with their
 * errors; an Error when the result is not a {@link BatchResult} of this
 * batch (the call then counts as failed).
 */
export function failuresOf(b: Batch, value: unknown): Map<Delivery, Error> | Error | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object') {
    return new TypeError(`batchHandler resolved with ${typeof value}, not a BatchResult`);
  }
  const failed = (value as BatchResult<unknown>).failed;
  if (failed === undefined) return undefined;
  if (!Array.isArray(failed)) {
    return new TypeError('batchHandler resolved with `failed` that is not an array');
  }
  const failures = new Map<Delivery, Error>();
  for (const entry of failed as unknown[]) {
    const message = (entry as { message?: InboundMessage<unknown> } | null)?.message;
    const d =
      b.deliveries.find((x) => x.message === message) ??
      b.deliveries.find((x) => message != null && x.message.offset === message.offset);
    if (d === undefined) {
      return new TypeError(
        `batchHandler reported a failed message that is not in the batch (offset ${String(message?.offset)})`,
      );
    }
    failures.set(d, toError((entry as { error?: unknown }).error));
  }
  return failures;
}
