import { DoneCursor, encodeProgress, type DoneRanges } from './progress-metadata.js';

/** What a commit of one partition carries. */
export interface Progress {
  /** The lowest offset not done (or the next expected one). */
  readonly position: number;
  /** Offsets above the position already done, encoded (see `progress-metadata.ts`); undefined when none. */
  readonly metadata: string | undefined;
  /** Identifies this state of the tracker, for {@link OffsetTracker.markCommitted}. */
  readonly version: number;
}

/**
 * Tracks, for one partition, which admitted offsets are done, and derives the
 * offset that is safe to commit: the lowest admitted offset not yet done, or
 * the next expected offset when everything admitted is done.
 *
 * KafkaJS's own `resolveOffset` keeps a single pointer per partition and so
 * cannot express out-of-order completion (kafkajs#1125); this is the part that
 * can. Offsets are not assumed contiguous: compacted topics and transaction
 * markers leave gaps, so the tracker only reasons about the offsets it was
 * given plus the fetch position the batch reported.
 *
 * Offsets are JavaScript numbers. Kafka offsets are int64, but a partition
 * would need 2^53 records (about 9e15) before precision is lost.
 */
export class OffsetTracker {
  /** Admitted offsets not yet committed past, in admission (ascending) order. */
  #pending: number[] = [];
  /** Their Kafka timestamps, as given (parsed only when the time lag is read). */
  #timestamps: string[] = [];
  #head = 0;
  readonly #done = new Set<number>();
  /** The next offset this partition is expected to deliver; `undefined` until the first admit. */
  #next: number | undefined;
  #committed: number | undefined;
  /** Bumped whenever an offset above the position completes: the metadata changed. */
  #version = 0;
  #committedVersion = 0;
  /** Offsets the last owner's commit marked done, consulted as they are fetched again. */
  #marked: DoneCursor | undefined;

  /** Offsets admitted and not done yet. */
  get pendingCount(): number {
    return this.#pending.length - this.#head - this.#done.size;
  }

  get nextOffset(): number | undefined {
    return this.#next;
  }

  get committedOffset(): number | undefined {
    return this.#committed;
  }

  /**
   * True when the offset was already admitted here: KafkaJS fetches from the
   * committed offset again after a rejoin, and a retained partition must not
   * run what it is already running.
   */
  seen(offset: number): boolean {
    return this.#next !== undefined && offset < this.#next;
  }

  /** Records an offset as in flight. Offsets must arrive in ascending order. */
  admit(offset: number, timestamp = ''): void {
    if (this.#next !== undefined && offset < this.#next) {
      throw new RangeError(`offset ${offset} admitted after ${this.#next - 1}`);
    }
    this.#pending.push(offset);
    this.#timestamps.push(timestamp);
    this.#next = offset + 1;
  }

  /**
   * Moves the expected position forward without a message: the end of a batch
   * whose last records were control records or aborted transactions.
   */
  advanceTo(nextOffset: number): void {
    if (this.#next === undefined || nextOffset > this.#next) this.#next = nextOffset;
  }

  /** Marks an admitted offset done. Returns false for an offset this tracker does not hold. */
  complete(offset: number): boolean {
    if (this.#head < this.#pending.length && this.#pending[this.#head] === offset) {
      // In order (the common case, and every case in partition mode): no search, no set.
      this.#head += 1;
      this.#popDone();
      return true;
    }
    const index = this.#indexOf(offset);
    if (index < 0 || this.#done.has(offset)) return false;
    this.#done.add(offset);
    this.#version += 1;
    this.#popDone();
    return true;
  }

  /** Pops the done prefix, so memory follows the in-flight window, not history. */
  #popDone(): void {
    if (this.#done.size > 0) {
      while (this.#head < this.#pending.length && this.#done.delete(this.#pending[this.#head]!)) {
        this.#head += 1;
      }
    }
    if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head);
      this.#timestamps = this.#timestamps.slice(this.#head);
      this.#head = 0;
    }
  }

  /**
   * The Kafka timestamp (ms since the epoch) of the oldest admitted message
   * not done yet: the one the commit position waits for. Undefined when
   * nothing is pending or it carries no usable timestamp.
   */
  oldestPendingTimestamp(): number | undefined {
    if (this.#head >= this.#pending.length) return undefined;
    const raw = this.#timestamps[this.#head];
    const ms = raw === undefined || raw === '' ? Number.NaN : Number(raw);
    return Number.isFinite(ms) && ms >= 0 ? ms : undefined;
  }

  /** The offset a commit should carry now, or `undefined` when nothing has been admitted. */
  commitPosition(): number | undefined {
    if (this.#head < this.#pending.length) return this.#pending[this.#head];
    return this.#next;
  }

  /**
   * What a commit should carry now: the position, and which offsets above it
   * are done. With `changedOnly`, undefined unless either moved since the
   * last confirmed commit.
   */
  progress(changedOnly: boolean): Progress | undefined {
    const position = this.commitPosition();
    if (position === undefined) return undefined;
    if (changedOnly && position === this.#committed && this.#version === this.#committedVersion) {
      return undefined;
    }
    const metadata =
      this.#done.size === 0
        ? undefined
        : encodeProgress(position, this.#pending, this.#head, (o) => this.#done.has(o));
    return { position, metadata, version: this.#version };
  }

  /** The broker confirmed a commit of `progress`. */
  markCommitted(progress: Pick<Progress, 'position' | 'version'>): void {
    if (this.#committed === undefined || progress.position >= this.#committed) {
      this.#committed = progress.position;
      this.#committedVersion = progress.version;
    }
  }

  /**
   * Offsets a previous owner's commit marked done above the committed
   * position: they are skipped when fetched again. Only for a tracker that
   * has admitted nothing yet.
   */
  restore(done: DoneRanges): void {
    if (this.#next === undefined && done.length > 0) this.#marked = new DoneCursor(done);
  }

  /**
   * True when `offset` was marked done by the previous owner's commit: the
   * caller admits and completes it without running it. Asked in ascending order.
   */
  markedDone(offset: number): boolean {
    const marked = this.#marked;
    if (marked === undefined) return false;
    const done = marked.has(offset);
    if (marked.exhausted) this.#marked = undefined;
    return done;
  }

  #indexOf(offset: number): number {
    let low = this.#head;
    let high = this.#pending.length - 1;
    while (low <= high) {
      const mid = (low + high) >>> 1;
      const value = this.#pending[mid]!;
      if (value === offset) return mid;
      if (value < offset) low = mid + 1;
      else high = mid - 1;
    }
    return -1;
  }
}
