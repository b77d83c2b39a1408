import type { OrderingMode } from './options.js';

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

export class Lanes<T extends LaneItem> {
  /** Lane key -> messages waiting behind the running one. The running one is not stored. */
  readonly #waiting = new Map<string, T[]>();
  readonly #start: (item: T) => void;

  constructor(start: (item: T) => void) {
    this.#start = start;
  }

  /** Lanes with a message running. */
  get activeLanes(): number {
    return this.#waiting.size;
  }

  push(item: T): void {
    const key = item.laneKey;
    if (key === undefined) {
      this.#start(item);
      return;
    }
    const queue = this.#waiting.get(key);
    if (queue === undefined) {
      this.#waiting.set(key, []);
      this.#start(item);
    } else {
      queue.push(item);
    }
  }

  /** The lane's running message finished: start the next one, if any. */
  done(item: T): void {
    const key = item.laneKey;
    if (key === undefined) return;
    const queue = this.#waiting.get(key);
    if (queue === undefined) return;
    const next = queue.shift();
    if (next === undefined) this.#waiting.delete(key);
    else this.#start(next);
  }
}
