import type { Clock } from '../../shared/clock.js';

/**
 * Rolling percentiles of handler latency over the last `windowMs`.
 *
 * The window is a ring of `bucketCount` time slices; each slice is a
 * log-scaled histogram (about 5% relative error), so recording is O(1),
 * memory is fixed whatever the message rate, and old samples expire a slice
 * at a time instead of being scanned.
 */
const GROWTH = 1.05;
const LOG_GROWTH = Math.log(GROWTH);
/** Bins cover 0.01 ms .. about 3 hours; anything outside is clamped to the edge bins. */
const MIN_MS = 0.01;
const BIN_COUNT = Math.ceil(Math.log((3 * 3600 * 1000) / MIN_MS) / LOG_GROWTH) + 2;

function binOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  return Math.min(BIN_COUNT - 1, 1 + Math.floor(Math.log(ms / MIN_MS) / LOG_GROWTH));
}

/** The value a bin stands for: the geometric middle of its bounds. */
function valueOf(bin: number): number {
  if (bin === 0) return MIN_MS;
  return MIN_MS * GROWTH ** (bin - 0.5);
}

interface Slice {
  startedAt: number;
  count: number;
  readonly bins: Uint32Array;
}

export class LatencyWindow {
  readonly #clock: Clock;
  readonly #sliceMs: number;
  readonly #slices: Slice[];

  constructor(clock: Clock, windowMs: number, bucketCount = 10) {
    this.#clock = clock;
    this.#sliceMs = windowMs / bucketCount;
    this.#slices = Array.from({ length: bucketCount }, () => ({
      startedAt: Number.NEGATIVE_INFINITY,
      count: 0,
      bins: new Uint32Array(BIN_COUNT),
    }));
  }

  /** `now` saves a clock read when the caller has just taken one. */
  record(latencyMs: number, now: number = this.#clock.now()): void {
    const slice = this.#sliceAt(now);
    slice.count += 1;
    const bin = binOf(latencyMs);
    slice.bins[bin] = slice.bins[bin]! + 1;
  }

  /** Samples currently inside the window. */
  count(): number {
    const now = this.#clock.now();
    let total = 0;
    for (const slice of this.#slices) if (this.#live(slice, now)) total += slice.count;
    return total;
  }

  /** The `p`-th percentile (0 < p <= 100) of the live samples, or `undefined` when there are none. */
  percentile(p: number): number | undefined {
    const now = this.#clock.now();
    const merged = new Float64Array(BIN_COUNT);
    let total = 0;
    for (const slice of this.#slices) {
      if (!this.#live(slice, now) || slice.count === 0) continue;
      total += slice.count;
      for (let i = 0; i < BIN_COUNT; i += 1) merged[i]! += slice.bins[i]!;
    }
    if (total === 0) return undefined;
    const rank = Math.max(1, Math.ceil((p / 100) * total));
    let seen = 0;
    for (let i = 0; i < BIN_COUNT; i += 1) {
      seen += merged[i]!;
      if (seen >= rank) return valueOf(i);
    }
    return valueOf(BIN_COUNT - 1);
  }

  #live(slice: Slice, now: number): boolean {
    return now - slice.startedAt < this.#sliceMs * this.#slices.length;
  }

  #sliceAt(now: number): Slice {
    const epoch = Math.floor(now / this.#sliceMs);
    const n = this.#slices.length;
    // A clock may report negative times; keep the ring index positive.
    const slice = this.#slices[((epoch % n) + n) % n]!;
    const startedAt = epoch * this.#sliceMs;
    if (slice.startedAt !== startedAt) {
      slice.startedAt = startedAt;
      slice.count = 0;
      slice.bins.fill(0);
    }
    return slice;
  }
}
