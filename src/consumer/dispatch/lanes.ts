import type { OrderingMode } from '../options.js';

/**
 * Lanes keep the chosen order: messages of one lane run one after another,
 * lanes run side by side. `partition` mode has a lane per partition, `key`
 * mode a lane per key within a partition (a null key is a key of its own),
 * `unordered` no lanes at all.
 */
export interface LaneItem {
  readonly laneKey: string | undefined;
}

export function laneKeyOf(
  mode: OrderingMode,
  topic: string,
  partition: number,
  key: Buffer | null,
): string | undefined {
  switch (mode) {
    case 'partition':
      return `${topic}|${partition}`;
    case 'key':
      // latin1 maps every byte to one char, so binary keys stay distinct and it is cheap.
      return key === null
        ? `${topic}|${partition}|∅`
        : `${topic}|${partition}|k${key.toString('latin1')}`;
    case 'unordered':
      return undefined;
  }
}

/** A lane's waiting messages: read from `head` on, so taking one never moves the rest. */
interface Lane<T> {
  items: (T | undefined)[];
  head: number;
}

/** Past this many taken slots, and half the array, a lane's array is cut down. */
const COMPACT_AFTER = 1024;

export class Lanes<T extends LaneItem> {
  /** Lane key -> messages waiting behind the running one. The running one is not stored. */
  readonly #lanes = new Map<string, Lane<T>>();
  readonly #start: (item: T) => void;

  constructor(start: (item: T) => void) {
    this.#start = start;
  }

  /** Lanes with a message running. */
  get activeLanes(): number {
    return this.#lanes.size;
  }

  push(item: T): void {
    const key = item.laneKey;
    if (key === undefined) {
      this.#start(item);
      return;
    }
    const lane = this.#lanes.get(key);
    if (lane === undefined) {
      this.#lanes.set(key, { items: [], head: 0 });
      this.#start(item);
    } else {
      lane.items.push(item);
    }
  }

  /** The lane's running message finished: start the next one, if any. */
  done(item: T): void {
    const next = this.take(item);
    if (next !== undefined) this.#start(next);
  }

  /**
   * The lane's running message finished: the next one becomes the running
   * one and is returned for the caller to run, instead of being started.
   * Undefined when the lane is empty (it is closed).
   */
  take(item: T): T | undefined {
    const key = item.laneKey;
    if (key === undefined) return undefined;
    const lane = this.#lanes.get(key);
    if (lane === undefined) return undefined;
    if (lane.head === lane.items.length) {
      this.#lanes.delete(key);
      return undefined;
    }
    const next = lane.items[lane.head];
    lane.items[lane.head] = undefined;
    lane.head += 1;
    if (lane.head >= COMPACT_AFTER && lane.head * 2 >= lane.items.length) {
      lane.items = lane.items.slice(lane.head);
      lane.head = 0;
    }
    return next;
  }
}
