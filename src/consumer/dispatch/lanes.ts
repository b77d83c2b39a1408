import type { OrderingMode } from '../options.js';

/**
 * Lanes keep the chosen order within one partition: messages of one lane
 * run one after another, lanes run side by side. `partition` ordering has
 * one lane, `key` ordering a lane per key (a null key is a key of its own),
 * `unordered` no lanes at all. A message is "out" from when it is taken to
 * run until it is done, retries and waits included: its lane's next
 * message becomes runnable only then.
 */
export interface LaneItem {
  /** The lane within its partition (`key` ordering); see {@link laneKeyOf}. */
  readonly laneKey: string;
}

/**
 * A key's lane within its partition. latin1 maps every byte to one char
 * below U+0100, so binary keys stay distinct, and no key can read as the
 * null key's marker.
 */
export function laneKeyOf(key: Buffer | null | undefined): string {
  return key == null ? '∅' : key.toString('latin1');
}

/** How many emptied key lanes a partition keeps for reuse. */
const SPARE_LANES = 256;

/** A FIFO read from `head` on, so taking one never moves the rest. */
export class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get size(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** Puts an item back in front (a parked message that may run again). */
  unshift(item: T): void {
    if (this.#head > 0) this.#items[--this.#head] = item;
    else this.#items.unshift(item);
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head += 1;
    if (this.#head === this.#items.length) {
      // Emptied: start over in the same array, allocating nothing.
      this.#items.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Empties the queue and returns what it held, in order. */
  drain(): T[] {
    const all = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return all;
  }
}

/** One partition's waiting messages, and which of them may run now. */
export class LaneQueue<T extends LaneItem = LaneItem> {
  readonly #mode: OrderingMode;
  /** Messages allowed to run now (each the head of its lane), oldest first. */
  readonly #ready = new Fifo<T>();
  /** `partition` ordering: whether the lane's head is out, and what waits behind it. */
  #out = false;
  readonly #waiting = new Fifo<T>();
  /** `key` ordering: a key's messages behind the one out or ready; present while any is. */
  readonly #keys = new Map<string, Fifo<T>>();
  /** Emptied key lanes kept for reuse: keys come and go with every message in `key` ordering. */
  readonly #spare: Fifo<T>[] = [];
  #size = 0;

  constructor(mode: OrderingMode) {
    this.#mode = mode;
  }

  /** Messages held here (ready or waiting), not those out. */
  get size(): number {
    return this.#size;
  }

  get hasReady(): boolean {
    return this.#ready.size > 0;
  }

  /** Messages allowed to run now. */
  get readyCount(): number {
    return this.#ready.size;
  }

  push(item: T): void {
    this.#size += 1;
    switch (this.#mode) {
      case 'unordered':
        this.#ready.push(item);
        return;
      case 'partition':
        if (this.#out || this.#ready.size > 0) this.#waiting.push(item);
        else this.#ready.push(item);
        return;
      case 'key': {
        const lane = this.#keys.get(item.laneKey);
        if (lane === undefined) {
          this.#keys.set(item.laneKey, this.#spare.pop() ?? new Fifo());
          this.#ready.push(item);
        } else {
          lane.push(item);
        }
      }
    }
  }

  /** The next message allowed to run; it is out until {@link done}. */
  take(): T | undefined {
    const item = this.#ready.shift();
    if (item === undefined) return undefined;
    this.#size -= 1;
    if (this.#mode === 'partition') this.#out = true;
    return item;
  }

  /**
   * A message that is out may run again (after a wait). It joins the back
   * of the runnable messages: messages woken together (by the circuit, say)
   * run in the order they were woken.
   */
  requeue(item: T): void {
    this.#size += 1;
    this.#ready.push(item);
  }

  /** A message that was out is done with: its lane's next message may run. */
  done(item: T): void {
    switch (this.#mode) {
      case 'unordered':
        return;
      case 'partition': {
        this.#out = false;
        const next = this.#waiting.shift();
        if (next !== undefined) this.#ready.push(next);
        return;
      }
      case 'key': {
        const lane = this.#keys.get(item.laneKey);
        if (lane === undefined) return;
        const next = lane.shift();
        if (next !== undefined) {
          this.#ready.push(next);
        } else {
          this.#keys.delete(item.laneKey);
          if (this.#spare.length < SPARE_LANES) this.#spare.push(lane);
        }
      }
    }
  }
}
