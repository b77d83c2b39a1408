/**
 * When each offset of a partition was appended, as far as periodic reads of
 * the log-end offset can tell: a list of steps, each saying "offsets
 * [fromOffset, toOffset) were appended after `after` and no later than
 * `until`". A step starts at the last read that still saw the old end
 * offset, so an idle producer leaves no gap to interpolate across: the
 * first message after an hour of silence is placed within one read
 * interval, not spread over the hour.
 *
 * The history is bounded by a step count, not by the rule window, so a
 * group far behind an idle topic still finds the step holding its
 * committed offset. Past the bound, two neighbouring steps are merged:
 * the pair whose merged span is smallest relative to its age, so recent
 * steps keep the read interval's precision and old ones coarsen in
 * proportion to their age (the relative error stays about even).
 */

export interface AppendStep {
  /** The last read that saw the end offset at `fromOffset` (exclusive bound of the append time). */
  readonly after: number;
  /** The first read that saw the end offset at `toOffset` (inclusive bound). */
  readonly until: number;
  readonly fromOffset: number;
  readonly toOffset: number;
}

export type Located =
  /** The offset was appended inside this step. */
  | { readonly kind: 'step'; readonly step: AppendStep }
  /** The offset was appended before the first read, at `at` or earlier. */
  | { readonly kind: 'before'; readonly at: number }
  /** Not appended yet (at or past the last end offset read), or no read yet. */
  | { readonly kind: 'none' };

export class AppendHistory {
  readonly #capacity: number;
  #steps: AppendStep[] = [];
  #firstAt: number | undefined;
  #lastAt: number | undefined;
  #lastEnd = 0;

  /** @param capacity Steps kept; at least 2. */
  constructor(capacity: number) {
    this.#capacity = Math.max(2, capacity);
  }

  /** Records one read of the end offset (reads in time order; an older one is ignored). */
  observe(at: number, endOffset: number, startOffset = 0): void {
    if (this.#lastAt === undefined || this.#firstAt === undefined) {
      this.#firstAt = this.#lastAt = at;
      this.#lastEnd = endOffset;
      return;
    }
    if (!(at > this.#lastAt)) return;
    if (endOffset > this.#lastEnd) {
      this.#steps.push({
        after: this.#lastAt,
        until: at,
        fromOffset: this.#lastEnd,
        toOffset: endOffset,
      });
      if (this.#steps.length > this.#capacity) this.#mergeOne(at);
    } else if (endOffset < this.#lastEnd) {
      // The log end went back: the topic was deleted and created again (or
      // truncated). Nothing recorded describes the new log.
      this.#steps = [];
      this.#firstAt = at;
    }
    this.#lastAt = at;
    this.#lastEnd = endOffset;
    // Records deleted by retention can never be the committed position's
    // record again: the group would restart at the log start.
    let drop = 0;
    while (drop < this.#steps.length && this.#steps[drop]!.toOffset <= startOffset) drop += 1;
    if (drop > 0) this.#steps.splice(0, drop);
  }

  /** Where the record at `offset` was appended. */
  locate(offset: number): Located {
    if (this.#firstAt === undefined || offset >= this.#lastEnd) return { kind: 'none' };
    const steps = this.#steps;
    const first = steps[0];
    if (first === undefined || offset < first.fromOffset) {
      // Appended before the oldest step: at or before that step's start,
      // or before the first read when there is no step.
      return { kind: 'before', at: first?.after ?? this.#firstAt };
    }
    // Binary search: steps are contiguous and ordered by offset.
    let lo = 0;
    let hi = steps.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (steps[mid]!.toOffset <= offset) lo = mid + 1;
      else hi = mid;
    }
    return { kind: 'step', step: steps[lo]! };
  }

  get size(): number {
    return this.#steps.length;
  }

  /** A copy of the steps, oldest first (for tests and history endpoints). */
  steps(): readonly AppendStep[] {
    return this.#steps.slice();
  }

  #mergeOne(now: number): void {
    const steps = this.#steps;
    let best = 0;
    let bestCost = Number.POSITIVE_INFINITY;
    for (let i = 0; i + 1 < steps.length; i += 1) {
      const a = steps[i]!;
      const b = steps[i + 1]!;
      // The merged step's span relative to its age: the relative error it
      // would add to a time lag read from it.
      const cost = (b.until - a.after) / Math.max(1, now - a.after);
      if (cost < bestCost) {
        bestCost = cost;
        best = i;
      }
    }
    const a = steps[best]!;
    const b = steps[best + 1]!;
    steps.splice(best, 2, {
      after: a.after,
      until: b.until,
      fromOffset: a.fromOffset,
      toOffset: b.toOffset,
    });
  }
}
