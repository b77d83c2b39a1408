import type { LatencyEvent } from '../events.js';
import type { ResolvedOptions } from '../options.js';
import type { FlowController } from './controller.js';
import type { LatencyWindow } from './latency-window.js';

type LatencySettings = NonNullable<ResolvedOptions<unknown>['latency']>;

/**
 * The latency trigger: every partition pauses (reason `latency`) while the
 * rolling handler-latency percentile is above `pauseAboveMs`, and resumes
 * below `resumeBelowMs`.
 */
export class LatencyTrigger {
  readonly #settings: LatencySettings;
  readonly #window: LatencyWindow;
  readonly #flow: FlowController;
  readonly #changed: (high: boolean, event: LatencyEvent) => void;
  #high = false;

  constructor(
    settings: LatencySettings,
    window: LatencyWindow,
    flow: FlowController,
    changed: (high: boolean, event: LatencyEvent) => void,
  ) {
    this.#settings = settings;
    this.#window = window;
    this.#flow = flow;
    this.#changed = changed;
  }

  /** How often {@link check} should run: often enough to react within a twentieth of the window. */
  get intervalMs(): number {
    return Math.max(50, Math.floor(this.#settings.windowMs / 20));
  }

  check(): void {
    const { percentile, pauseAboveMs, resumeBelowMs } = this.#settings;
    const latencyMs = this.#window.percentile(percentile);
    if (!this.#high && latencyMs !== undefined && latencyMs > pauseAboveMs) {
      this.#high = true;
      this.#flow.add('latency');
      this.#changed(true, { percentile, latencyMs, thresholdMs: pauseAboveMs });
    } else if (this.#high && (latencyMs === undefined || latencyMs < resumeBelowMs)) {
      // An empty window also clears: while paused nothing new is measured,
      // and old samples must not hold the pause forever.
      this.#high = false;
      this.#flow.remove('latency');
      this.#changed(false, { percentile, latencyMs, thresholdMs: resumeBelowMs });
    }
  }
}
