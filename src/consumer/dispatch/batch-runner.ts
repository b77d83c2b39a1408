import { toError } from '../../errors.js';
import { decideBatchFailure } from '../failure/batch-policy.js';
import type { Circuit } from '../failure/breaker.js';
import { shedAge } from '../failure/shedding.js';
import type { InboundMessage } from '../message.js';
import type { ResolvedOptions } from '../options.js';
import { Attempts, type AttemptSink } from './attempts.js';
import { Batch, failuresOf, Segments, type Unit } from './batch.js';
import type { Delivery } from './delivery.js';
import type { Dispatcher } from './dispatcher.js';
import type { Runner, RunnerHooks } from './runner.js';
import { isThenable } from '../../shared/thenable.js';

/**
 * The batch step of the one path (the dispatcher's `Step` for a
 * {@link Batch}): shed and deserialize each message (those that fall out
 * go on alone), call the batch handler under the deadline and the breaker,
 * and carry out the outcome per message. A failed call is retried whole
 * with backoff, then split (see failure/batch-policy.ts); messages the
 * handler names as failed go to the message policy one by one. Messages
 * alone run the {@link Runner}'s path.
 */
export class BatchRunner implements AttemptSink<Batch> {
  readonly #options: ResolvedOptions<unknown>;
  readonly attempts: Attempts<Batch, InboundMessage<unknown>[]>;
  readonly #circuit: Circuit;
  readonly #hooks: RunnerHooks;
  readonly #runner: Runner;
  #dispatcher!: Dispatcher;

  constructor(
    options: ResolvedOptions<unknown>,
    circuit: Circuit,
    hooks: RunnerHooks,
    runner: Runner,
    measured: (durationMs: number, now: number) => void,
  ) {
    this.#options = options;
    this.#circuit = circuit;
    this.#hooks = hooks;
    this.#runner = runner;
    this.attempts = new Attempts<Batch, InboundMessage<unknown>[]>(
      options.clock,
      options.handlerTimeoutMs,
      options.batchHandler!,
      this,
      measured,
      hooks.groupId,
    );
  }

  bind(dispatcher: Dispatcher): void {
    this.#dispatcher = dispatcher;
  }

  readonly step = (b: Batch, free: (done: boolean) => void): void => {
    try {
      if (this.#hooks.abandoned(b.deliveries[0]!)) return this.#abandon(b, free);
      if (!b.prepared) return this.#prepare(b, free);
      this.#attempt(b, free);
    } catch (error) {
      this.#unexpected(b, free, error);
    }
  };

  #abandon(b: Batch, free: (done: boolean) => void): void {
    free(false);
    for (const d of b.deliveries) this.#end(d, false);
  }

  /** A message of the batch ends: its accounts settle and its lane moves on. */
  #end(d: Delivery, done: boolean): void {
    this.#runner.tally.released(d);
    try {
      this.#hooks.settle(d, done);
    } finally {
      this.#dispatcher.finished(d);
    }
  }

  /** Goes on alone, through the per-message path. */
  #alone(d: Delivery): void {
    d.alone = true;
    this.#dispatcher.requeue(d);
  }

  /**
   * Sheds and deserializes each message. One to shed, or that fails to
   * deserialize, goes on alone: the per-message path sheds it, or
   * dead-letters it (deserializing it once more, as that path does).
   */
  #prepare(b: Batch, free: (done: boolean) => void): void {
    b.prepared = true;
    const o = this.#options;
    const now = Date.now();
    const kept = new Array<boolean>(b.deliveries.length).fill(true);
    const pending: Promise<void>[] = [];
    b.deliveries.forEach((d, i) => {
      if (o.shed && shedAge(d.raw.timestamp, now, o.shed.maxAgeMs) !== undefined) {
        kept[i] = false;
        return;
      }
      d.started = true;
      if (o.deserialize === undefined || d.deserialized) return;
      let payload: unknown;
      try {
        payload = o.deserialize(d.raw as never, {
          topic: d.state.topic,
          partition: d.state.partition,
        });
      } catch {
        kept[i] = false;
        return;
      }
      if (!isThenable(payload)) {
        d.message.payload = payload;
        d.deserialized = true;
        return;
      }
      pending.push(
        Promise.resolve(payload).then(
          (value) => {
            d.message.payload = value;
            d.deserialized = true;
          },
          () => {
            kept[i] = false;
          },
        ),
      );
    });
    const go = (): void => {
      const out = b.deliveries.filter((_, i) => !kept[i]);
      b.deliveries = b.deliveries.filter((_, i) => kept[i]);
      for (const d of out) this.#alone(d);
      if (b.deliveries.length > 1) return this.#attempt(b, free);
      free(false);
      if (b.deliveries.length === 1) this.#alone(b.deliveries[0]!);
    };
    if (pending.length === 0) return go();
    void Promise.all(pending).then(() => {
      try {
        if (this.#hooks.abandoned(b.deliveries[0]!)) this.#abandon(b, free);
        else go();
      } catch (error) {
        // This runs in a promise reaction, where a throw would escape.
        this.#unexpected(b, free, error);
      }
    });
  }

  #attempt(b: Batch, free: (done: boolean) => void): void {
    const circuit = this.#circuit;
    const attempt = b.attempts + 1;
    // A new array per call: a handler may keep the one it got.
    const messages = b.deliveries.map((d) => d.message);
    // Its messages are running: their calls tell poison from an outage.
    for (const d of b.deliveries) this.#runner.tally.begin(d);
    if (circuit.state === 'closed') {
      return this.attempts.run(messages, attempt, b, {
        attemptEnded: (_b, failed, value, now, durationMs) =>
          this.#ended(b, free, attempt, failed, value, now, durationMs, !b.blamed),
      });
    }
    if (circuit.state === 'open') return this.#failed(b, free, undefined, true);
    let outcome: [boolean, unknown, number, number] | undefined;
    circuit
      .probe(
        () =>
          new Promise<void>((resolve, reject) =>
            this.attempts.run(messages, attempt, b, {
              attemptEnded: (_b, failed, value, now, durationMs) => {
                outcome = [failed, value, now, durationMs];
                if (failed) reject(toError(value));
                else resolve();
              },
            }),
          ),
        !b.blamed,
      )
      .then(
        () => this.#ended(b, free, attempt, false, outcome![1], outcome![2], outcome![3], false),
        (error: unknown) => {
          if (outcome === undefined) this.#failed(b, free, toError(error), true);
          else this.#ended(b, free, attempt, true, outcome[1], outcome[2], outcome[3], false);
        },
      );
  }

  /** Required by {@link AttemptSink}; every call passes its own sink. */
  attemptEnded(): void {}

  #ended(
    b: Batch,
    free: (done: boolean) => void,
    attempt: number,
    failed: boolean,
    value: unknown,
    now: number,
    durationMs: number,
    counted: boolean,
  ): void {
    try {
      let error = failed ? toError(value) : undefined;
      const failures = error === undefined ? failuresOf(b, value) : undefined;
      if (failures instanceof Error) {
        this.#hooks.error(failures);
        error = failures;
      }
      const observers = this.#runner.observers;
      if (observers.wanted) {
        observers.ended(b.deliveries[0]!.message, b.deliveries.length, attempt, error, durationMs);
      }
      // A fresh batch's first call is a fair sample of the downstream; a
      // retry, or a half of a failed batch, is not.
      const first = b.attempts === 0 && b.mark === undefined;
      if (error === undefined) {
        if (counted) this.#circuit.record(false, now);
        this.#runner.tally.batchEnded(false, first, now);
        return this.#succeeded(b, free, failures as Map<Delivery, Error> | undefined);
      }
      const retriable = this.#hooks.isRetriable(error);
      if (counted) this.#circuit.record(retriable, now);
      if (retriable) {
        this.#runner.tally.batchEnded(true, first, now);
        b.mark ??= this.#runner.tally.mark();
      }
      this.#failed(b, free, error, false);
    } catch (unexpected) {
      // This runs in a promise reaction, where a throw would escape.
      this.#unexpected(b, free, unexpected);
    }
  }

  #succeeded(
    b: Batch,
    free: (done: boolean) => void,
    failures: Map<Delivery, Error> | undefined,
  ): void {
    free(false);
    if (failures === undefined || failures.size === 0) {
      for (const d of b.deliveries) this.#end(d, true);
      return;
    }
    const failing: Delivery[] = [];
    for (const d of b.deliveries) {
      const error = failures.get(d);
      if (error === undefined) this.#end(d, true);
      else {
        d.alone = true;
        d.attempts = 0;
        d.pendingError = error;
        this.#runner.tally.waiting(d);
        failing.push(d);
      }
    }
    this.#segments(b).split(failing);
  }

  #failed(
    b: Batch,
    free: (done: boolean) => void,
    error: Error | undefined,
    refused: boolean,
  ): void {
    const circuit = this.#circuit;
    if (!refused) b.attempts += 1;
    const failure = error ?? new Error('refused by the open circuit');
    const decision = decideBatchFailure(
      {
        refused,
        circuit: circuit.state,
        retriable: refused || this.#hooks.isRetriable(failure),
        attempts: b.attempts,
        maxAttempts: b.maxAttempts,
      },
      this.#options.retry,
    );
    switch (decision.kind) {
      case 'wait-circuit':
        if (!refused) b.attempts -= 1;
        if (decision.blame) b.blamed = true;
        // A refusal can arrive after the probe that caused it closed the
        // circuit: then there is no change left to wait for.
        if (circuit.state !== 'closed' && (refused || circuit.state === 'open')) {
          return this.#park(b, free, circuit.changed({ last: b.blamed }));
        }
        return this.#park(b, free, Promise.resolve());
      case 'retry':
        for (const d of b.deliveries) {
          this.#hooks.emit('message.retry', {
            topic: d.message.topic,
            partition: d.message.partition,
            offset: d.message.offset,
            attempt: b.attempts,
            delayMs: decision.delayMs,
            error: failure,
          });
        }
        return this.#park(b, free, this.#hooks.sleep(decision.delayMs));
      case 'split':
        return this.#split(b, free);
    }
  }

  /** Halves, run one after the other; a message alone takes the per-message path afresh. */
  #split(b: Batch, free: (done: boolean) => void): void {
    free(false);
    for (const d of b.deliveries) this.#runner.tally.waiting(d);
    const middle = Math.ceil(b.deliveries.length / 2);
    const parts = [b.deliveries.slice(0, middle), b.deliveries.slice(middle)].map((half): Unit => {
      if (half.length > 1) return new Batch(b.state, half, 1, true, b.mark);
      const d = half[0]!;
      d.alone = true;
      d.attempts = 0;
      // What others did since the batch first failed tells poison from outage.
      d.mark = b.mark;
      return d;
    });
    this.#segments(b).split(parts);
  }

  #segments(b: Batch): Segments {
    if (b.segments !== undefined) return b.segments;
    const segments = new Segments((part) => {
      if (part instanceof Batch) return this.#dispatcher.requeue(part);
      const error = part.pendingError;
      if (error === undefined) return this.#dispatcher.requeue(part);
      part.pendingError = undefined;
      this.#runner.failedAlone(part, error);
    });
    b.segments = segments;
    return segments;
  }

  /** The batch leaves its worker until `until` settles, then runs again whole. */
  #park(b: Batch, free: (done: boolean) => void, until: Promise<unknown>): void {
    free(false);
    void until.then(
      () => this.#dispatcher.requeue(b),
      (error: unknown) => {
        this.#hooks.error(toError(error));
        this.#dispatcher.requeue(b);
      },
    );
  }

  /** Not expected (see the Runner's): reported, and the batch comes round again. */
  #unexpected(b: Batch, free: (done: boolean) => void, error: unknown): void {
    this.#hooks.error(toError(error));
    if (b.working) this.#park(b, free, this.#hooks.sleep(this.#options.retry.initialDelayMs));
  }
}
