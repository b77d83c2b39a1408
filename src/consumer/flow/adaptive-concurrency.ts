/**
 * Additive-increase / multiplicative-decrease concurrency limit, as TCP does
 * for its window and Netflix's concurrency-limits does for servers: while the
 * downstream answers within the target latency and the limit is actually in
 * use, grow by a step; when latency rises above the target, cut by a factor.
 * The consumer then settles near the downstream's real capacity instead of
 * flapping between paused and flooding.
 */
export interface AimdSettings {
  readonly min: number;
  readonly max: number;
  readonly initial: number;
  readonly targetLatencyMs: number;
  readonly decreaseFactor: number;
  readonly increaseStep: number;
}

export type AimdDecision =
  | { readonly changed: false; readonly limit: number }
  | {
      readonly changed: true;
      readonly limit: number;
      readonly from: number;
      readonly reason: 'latency-high' | 'healthy';
    };

export class AimdLimit {
  readonly #settings: AimdSettings;
  #limit: number;

  constructor(settings: AimdSettings) {
    this.#settings = settings;
    this.#limit = settings.initial;
  }

  get limit(): number {
    return this.#limit;
  }

  /**
   * @param latencyMs the rolling latency percentile now, or undefined with no samples
   * @param inUse how many slots are busy; growth needs the limit to be the bottleneck
   */
  update(latencyMs: number | undefined, inUse: number): AimdDecision {
    const from = this.#limit;
    const { min, max, targetLatencyMs, decreaseFactor, increaseStep } = this.#settings;
    if (latencyMs === undefined) return { changed: false, limit: from };
    if (latencyMs > targetLatencyMs) {
      let next = Math.floor(from * decreaseFactor);
      if (next === from) next = from - 1;
      this.#limit = Math.max(min, next);
      return this.#limit === from
        ? { changed: false, limit: from }
        : { changed: true, limit: this.#limit, from, reason: 'latency-high' };
    }
    if (inUse >= from) {
      this.#limit = Math.min(max, from + increaseStep);
      return this.#limit === from
        ? { changed: false, limit: from }
        : { changed: true, limit: this.#limit, from, reason: 'healthy' };
    }
    return { changed: false, limit: from };
  }
}
