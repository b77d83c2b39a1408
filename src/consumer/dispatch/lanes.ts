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

  /** The item {@link shift} would return, left in place. */
  peek(): T | undefined {
    return this.#head === this.#items.length ? undefined : this.#items[this.#head];
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
  /**
   * `partition` ordering: messages of the lane out (one, or a batch's
   * run), and what waits behind them.
   */
  #out = 0;
  readonly #waiting = new Fifo<T>();
  /** `key` ordering: a key's messages behind the one out or ready; present while any is. */
  readonly #keys = new Map<string, Fifo<T>>();
  /** `key` ordering, batches: messages of a key out beside its head; the lane moves on when none is. */
  readonly #keyOut = new Map<string, number>();
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
        if (this.#out > 0 || this.#ready.size > 0) this.#waiting.push(item);
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
    // Fresh heads reach `#ready` only while nothing is out; an item put
    // back by `requeue` is already counted out.
    if (this.#mode === 'partition' && this.#out === 0) this.#out = 1;
    return item;
  }

  /** The next message {@link take} would return, left in place. */
  peek(): T | undefined {
    return this.#ready.peek();
  }

  /**
   * Batches: the next message allowed to run, and after it, when `joins`
   * says it may be batched, the messages the ordering lets run beside it,
   * up to `max` messages and `maxBytes` (the first always fits). In
   * `partition` ordering that is the lane's next messages in order; in
   * `key` ordering other keys' heads, then the messages behind each head
   * in its key's order; `unordered`, the next runnable ones. Each is out until
   * {@link done}: a lane moves on once all of its messages in the batch
   * are done, so no two batches out hold the same lane.
   */
  takeRun(
    max: number,
    maxBytes: number,
    joins: (item: T) => boolean,
    size: (item: T) => number,
  ): T[] {
    const first = this.take();
    if (first === undefined) return [];
    const run = [first];
    if (!joins(first)) return run;
    let bytes = size(first);
    const fits = (item: T | undefined): item is T => {
      if (item === undefined || run.length >= max || bytes + size(item) > maxBytes) return false;
      bytes += size(item);
      return true;
    };
    switch (this.#mode) {
      case 'partition':
        while (fits(this.#waiting.peek())) {
          run.push(this.#waiting.shift()!);
          this.#size -= 1;
          this.#out += 1;
        }
        return run;
      case 'key': {
        // Keys' heads first, so a hot key does not fill the batch alone;
        // then what waits behind each head, in order.
        for (let next = this.#ready.peek(); next !== undefined && joins(next) && fits(next);) {
          run.push(this.#ready.shift()!);
          this.#size -= 1;
          next = this.#ready.peek();
        }
        const heads = run.length;
        for (let i = 0; i < heads; i += 1) this.#takeKey(run[i]!, run, fits);
        return run;
      }
      case 'unordered':
        for (let next = this.#ready.peek(); next !== undefined && joins(next) && fits(next);) {
          run.push(this.#ready.shift()!);
          this.#size -= 1;
          next = this.#ready.peek();
        }
        return run;
    }
  }

  /** `key` ordering: the messages behind `head` in its key's lane join the run, in order. */
  #takeKey(head: T, run: T[], fits: (item: T | undefined) => item is T): void {
    const lane = this.#keys.get(head.laneKey);
    if (lane === undefined) return;
    let taken = 0;
    while (fits(lane.peek())) {
      run.push(lane.shift()!);
      taken += 1;
    }
    if (taken === 0) return;
    this.#size -= taken;
    this.#keyOut.set(head.laneKey, (this.#keyOut.get(head.laneKey) ?? 0) + taken);
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
        if (this.#out > 0) this.#out -= 1;
        if (this.#out > 0) return;
        const next = this.#waiting.shift();
        if (next !== undefined) this.#ready.push(next);
        return;
      }
      case 'key': {
        const out = this.#keyOut.get(item.laneKey);
        if (out !== undefined) {
          if (out === 1) this.#keyOut.delete(item.laneKey);
          else this.#keyOut.set(item.laneKey, out - 1);
          return;
        }
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
