import pLimit from 'p-limit';
import type { Partitions } from '../admission/partitions.js';
import type { Circuit } from '../failure/breaker.js';
import type { ResolvedOptions } from '../options.js';
import { Batch } from './batch.js';
import { BatchRunner } from './batch-runner.js';
import { Dispatcher, type Step } from './dispatcher.js';
import { Runner, type AttemptObserver, type RunnerHooks } from './runner.js';

/**
 * The dispatch stage put together: the dispatcher, the runner that takes
 * a message through its attempts, and with `batchHandler` the batch runner,
 * each unit going to the runner of its kind. What the consumer around it
 * needs of them (their limits, observers, abandoning and stopping) is here
 * once, so neither the facade nor the dispatcher has to know batches exist.
 */
export class Pipeline {
  readonly dispatcher: Dispatcher;
  readonly #runner: Runner;
  readonly #batches: BatchRunner | undefined;

  /**
   * @param measured each call's duration, as it ends (the latency window's feed)
   * @param hurry true while the consumer closes: batches stop lingering
   */
  constructor(
    options: ResolvedOptions<unknown>,
    partitions: Partitions,
    circuit: Circuit,
    hooks: RunnerHooks,
    measured: (durationMs: number, now: number) => void,
    hurry: () => boolean,
  ) {
    const runner = new Runner(options, circuit, hooks, measured);
    const batches = options.batchHandler
      ? new BatchRunner(options, circuit, hooks, runner, measured)
      : undefined;
    const step: Step =
      batches === undefined
        ? // Without a batch handler every unit is a message.
          (runner.step as Step)
        : (unit, free) =>
            unit instanceof Batch ? batches.step(unit, free) : runner.step(unit, free);
    this.dispatcher = new Dispatcher(
      pLimit(options.concurrency),
      partitions,
      step,
      options.batch && {
        ...options.batch,
        maxAttempts: options.retry.maxAttempts,
        clock: options.clock,
        hurry,
      },
    );
    runner.bind(this.dispatcher);
    batches?.bind(this.dispatcher);
    this.#runner = runner;
    this.#batches = batches;
  }

  /** Adds an observer of every call's outcome and duration; returns its removal. */
  observe(observer: AttemptObserver): () => void {
    return this.#runner.observers.add(observer);
  }

  /** The circuit changed state: failing messages' evidence follows it. */
  circuitChanged(state: 'closed' | 'open' | 'half-open'): void {
    this.#runner.circuitChanged(state);
  }

  /** Ends every running call with `reason` (close gave up waiting). */
  abortAll(reason: Error): void {
    this.#runner.attempts.abortAll(reason);
    this.#batches?.attempts.abortAll(reason);
  }

  /** Stops the deadline and linger timers (on close). */
  stop(): void {
    this.#runner.attempts.stop();
    this.#batches?.attempts.stop();
    this.dispatcher.stop();
  }
}
