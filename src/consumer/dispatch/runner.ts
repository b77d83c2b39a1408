import { MessageShedError, toError } from '../../errors.js';
import type { PartitionState } from '../admission/partitions.js';
import type { ConsumerEvents } from '../events.js';
import type { Circuit } from '../failure/breaker.js';
import { deadLetter, type DeadLetterReason } from '../failure/dead-letter.js';
import { CircuitWaits } from '../failure/circuit-waits.js';
import { holdAndWait } from '../failure/hold.js';
import { FailureTally } from '../failure/tally.js';
import { decideFailure } from '../failure/policy.js';
import { shedAge, shedEvent } from '../failure/shedding.js';
import type { PauseReason } from '../flow/controller.js';
import type { ResolvedOptions } from '../options.js';
import { Attempts, type AttemptSink } from './attempts.js';
import { CallObservers } from './call-observers.js';
import type { Delivery } from './delivery.js';
import type { Dispatcher } from './dispatcher.js';
import { isThenable } from '../../shared/thenable.js';

export type { AttemptObserver } from './call-observers.js';

type Emit = <E extends keyof ConsumerEvents>(
  event: E,
  payload: Parameters<ConsumerEvents[E]>[0],
) => void;

/** What the runner needs from the consumer around it. */
export interface RunnerHooks {
  readonly emit: Emit;
  /** Whether anyone listens for `handler.settled` (the payload is built only then). */
  settledListened(): boolean;
  /** Settles a message's accounts: offsets, the in-flight budget and what waits on it. */
  settle(delivery: Delivery, done: boolean): void;
  /** A message holds its partition at a failure (`on`), or stops holding it. */
  hold(state: PartitionState, reason: PauseReason, on: boolean): void;
  /** True once the message is no longer ours to finish (revoked, or abandoned on close). */
  abandoned(delivery: Delivery): boolean;
  /** Resolves after `ms`, early when the consumer abandons in-flight work. */
  sleep(ms: number): Promise<void>;
  isRetriable(error: Error): boolean;
  groupId(): string;
  /** Something unexpected failed inside the pipeline. */
  error(error: Error): void;
}

/**
 * The one path every message takes, a step at a time: shed if too old,
 * deserialize, call the handler under its deadline (through the breaker's
 * probe while half-open), and on failure carry out the failure policy:
 * retry after a backoff, wait for the circuit, hold, or dead-letter. A
 * message that has to wait leaves its worker and comes back through the
 * dispatcher; its lane waits with it.
 */
export class Runner implements AttemptSink<Delivery> {
  readonly #options: ResolvedOptions<unknown>;
  readonly attempts: Attempts<Delivery>;
  readonly #circuit: Circuit;
  readonly #hooks: RunnerHooks;
  #dispatcher!: Dispatcher;
  readonly observers: CallObservers;
  /** Which messages in flight can still tell poison from an outage, and what other calls did. */
  readonly tally: FailureTally;
  readonly #waits: CircuitWaits;

  /** @param measured each attempt's duration, as it ends (the latency window's feed) */
  constructor(
    options: ResolvedOptions<unknown>,
    circuit: Circuit,
    hooks: RunnerHooks,
    measured: (durationMs: number, now: number) => void,
  ) {
    this.#options = options;
    this.attempts = new Attempts(
      options.clock,
      options.handlerTimeoutMs,
      options.handler,
      this,
      measured,
      hooks.groupId,
    );
    this.#circuit = circuit;
    this.#hooks = hooks;
    this.observers = new CallObservers(hooks);
    this.tally = new FailureTally(options.retry.maxAttempts, options.circuitBreaker);
    this.#waits = new CircuitWaits(
      circuit,
      this.tally,
      hooks.sleep,
      options.circuitBreaker?.resetTimeoutMs ?? 0,
    );
  }

  /** The circuit opened: the latest first attempts no longer say the downstream works. */
  circuitChanged(state: 'closed' | 'open' | 'half-open'): void {
    if (state === 'open') this.tally.circuitOpened(this.#options.clock.now());
  }

  bind(dispatcher: Dispatcher): void {
    this.#dispatcher = dispatcher;
  }

  /**
   * A message the batch handler reported as failed (its call charged):
   * from here it is alone, under the failure policy like any message.
   */
  failedAlone(d: Delivery, error: Error): void {
    try {
      this.tally.begin(d);
      this.#countFailure(d, error, this.#options.clock.now(), false);
      this.#failed(d, noop, error, false);
    } catch (unexpected) {
      this.#hooks.error(toError(unexpected));
    }
  }

  /** The dispatcher's step (see {@link Step}). */
  readonly step = (d: Delivery, free: (done: boolean) => void): void => {
    d.free = free;
    this.#waits.woke(d);
    try {
      if (this.#hooks.abandoned(d)) return this.#finish(d, false, free);
      const o = this.#options;
      this.tally.begin(d);
      if (!d.started) {
        d.started = true;
        if (o.shed) {
          const ageMs = shedAge(d.raw.timestamp, Date.now(), o.shed.maxAgeMs);
          if (ageMs !== undefined) return this.#shed(d, ageMs, free);
        }
      }
      if (o.deserialize !== undefined && !d.deserialized) return this.#deserialize(d, free);
      this.#attempt(d, free);
    } catch (error) {
      this.#unexpected(d, free, error);
    }
  };

  /**
   * Not expected: the handler's, deserializer's and listeners' errors are
   * caught where they arise. Reported, and a message still holding its
   * worker waits and comes round again rather than being lost.
   */
  #unexpected(d: Delivery, free: (done: boolean) => void, error: unknown): void {
    this.#hooks.error(toError(error));
    if (d.working) this.#park(d, free, this.#hooks.sleep(this.#options.retry.initialDelayMs));
  }

  #finish(d: Delivery, done: boolean, free: (done: boolean) => void): void {
    this.tally.released(d);
    try {
      this.#hooks.settle(d, done);
    } finally {
      free(true);
    }
  }

  /** The message leaves its worker until `until` settles, then runs again. */
  #park(d: Delivery, free: (done: boolean) => void, until: Promise<unknown>): void {
    free(false);
    void until.then(
      () => this.#dispatcher.requeue(d),
      (error: unknown) => {
        this.#hooks.error(toError(error));
        this.#dispatcher.requeue(d);
      },
    );
  }

  /** The message leaves its worker for a dead-letter write; its lane moves on once it is written. */
  #toDeadLetter(
    d: Delivery,
    free: (done: boolean) => void,
    error: Error,
    reason: DeadLetterReason,
    then?: () => void,
    guess = false,
  ): void {
    free(false);
    const hooks = this.#hooks;
    void deadLetter(this.#options.deadLetter!, d, error, reason, hooks, guess).then(
      (written) => {
        if (written) then?.();
        this.#end(d, written);
      },
      (unexpected: unknown) => {
        hooks.error(toError(unexpected));
        this.#end(d, false);
      },
    );
  }

  /** A message that was parked ends: its accounts settle and its lane moves on. */
  #end(d: Delivery, done: boolean): void {
    this.tally.released(d);
    try {
      this.#hooks.settle(d, done);
    } finally {
      this.#dispatcher.finished(d);
    }
  }

  #shed(d: Delivery, ageMs: number, free: (done: boolean) => void): void {
    const shed = this.#options.shed!;
    const event = shedEvent(d.message, ageMs, shed);
    if (shed.action === 'skip') {
      this.#hooks.emit('message.shed', event);
      return this.#finish(d, true, free);
    }
    const error = new MessageShedError(ageMs, shed.maxAgeMs);
    this.#toDeadLetter(d, free, error, 'shed', () => this.#hooks.emit('message.shed', event));
  }

  #deserialize(d: Delivery, free: (done: boolean) => void): void {
    let payload: unknown;
    try {
      payload = this.#options.deserialize!(d.raw as never, {
        topic: d.state.topic,
        partition: d.state.partition,
      });
    } catch (thrown) {
      return this.#deserializeFailed(d, toError(thrown), free);
    }
    if (!isThenable(payload)) {
      d.message.payload = payload;
      d.deserialized = true;
      return this.#attempt(d, free);
    }
    payload.then(
      (value) => {
        try {
          d.message.payload = value;
          d.deserialized = true;
          if (this.#hooks.abandoned(d)) this.#finish(d, false, free);
          else this.#attempt(d, free);
        } catch (error) {
          // This runs in a promise reaction, where a throw would escape.
          this.#unexpected(d, free, error);
        }
      },
      (thrown: unknown) => this.#deserializeFailed(d, toError(thrown), free),
    );
  }

  #deserializeFailed(d: Delivery, error: Error, free: (done: boolean) => void): void {
    if (this.#options.deadLetter) return this.#toDeadLetter(d, free, error, 'deserialization');
    // No dead-letter topic: the partition holds and deserializing is tried again.
    this.#park(d, free, holdAndWait(d, error, this.#options.retry.maxDelayMs, this.#hooks));
  }

  #attempt(d: Delivery, free: (done: boolean) => void): void {
    const circuit = this.#circuit;
    if (circuit.state === 'closed') {
      if (this.#waits.waitsForTrial(d)) return this.#park(d, free, this.#waits.forTrial(d));
      return this.attempts.run(d.message, d.attempts + 1, d);
    }
    if (circuit.state === 'open') return this.#failed(d, free, undefined, true);
    // Half-open: one probe goes through opossum (the health check, when
    // there is one); the rest are refused and wait, those that failed
    // before behind the others (see CircuitWaits).
    if (circuit.checksHealth || this.#waits.yieldsProbe(d)) {
      return this.#park(d, free, this.#waits.forChange(d));
    }
    const attempt = d.attempts + 1;
    let outcome: [boolean, unknown, number, number] | undefined;
    circuit
      .probe(
        () =>
          new Promise<void>((resolve, reject) =>
            this.attempts.run(d.message, attempt, d, {
              attemptEnded: (_d, failed, thrown, now, durationMs) => {
                outcome = [failed, thrown, now, durationMs];
                if (failed) reject(thrown);
                else resolve();
              },
            }),
          ),
        this.tally.telling(d),
      )
      .then(
        () => this.#ended(d, free, attempt, false, undefined, outcome![2], outcome![3], false),
        (error: unknown) => {
          if (outcome === undefined) this.#failed(d, free, toError(error), true);
          else this.#ended(d, free, attempt, true, outcome[1], outcome[2], outcome[3], false);
        },
      );
  }

  /** An attempt run while the circuit was closed ended (see {@link AttemptSink}). */
  attemptEnded(
    d: Delivery,
    failed: boolean,
    thrown: unknown,
    now: number,
    durationMs: number,
  ): void {
    this.#ended(d, d.free!, d.attempts + 1, failed, thrown, now, durationMs, true);
  }

  #ended(
    d: Delivery,
    free: (done: boolean) => void,
    attempt: number,
    failed: boolean,
    thrown: unknown,
    now: number,
    durationMs: number,
    closed: boolean,
  ): void {
    try {
      const error = failed ? toError(thrown) : undefined;
      if (this.observers.wanted) this.observers.ended(d.message, 1, attempt, error, durationMs);
      const telling = this.tally.telling(d);
      // The breaker counts a message that used its attempts only on a
      // trial close, or while the downstream looks to be failing (see
      // FailureEvidence.failingLately): otherwise it is likely poison, and
      // counting it would open the circuit on poison.
      // Not counting it at all, an outage whose victims have all used their
      // attempts would leave the breaker nothing to count.
      const counted = closed && (telling || this.#circuit.onTrial || this.tally.failingLately(now));
      if (error === undefined) {
        this.tally.succeeded(d, now);
        if (counted) this.#circuit.record(false, now);
        return this.#finish(d, true, free);
      }
      this.#countFailure(d, error, now, counted);
      this.#failed(d, free, error, false);
    } catch (unexpected) {
      // This runs in a promise reaction, where a throw would escape.
      this.#unexpected(d, free, unexpected);
    }
  }

  /** A call of the message failed: the breaker (when `counted`) and the tally take note. */
  #countFailure(d: Delivery, error: Error, now: number, counted: boolean): void {
    const retriable = this.#hooks.isRetriable(error);
    if (counted) this.#circuit.record(retriable, now);
    this.tally.failed(d, retriable, now);
  }

  /** Carries out the failure policy for a failed (or refused) attempt. */
  #failed(
    d: Delivery,
    free: (done: boolean) => void,
    error: Error | undefined,
    refused: boolean,
  ): void {
    const o = this.#options;
    const circuit = this.#circuit;
    const tally = this.tally;
    if (!refused) d.attempts += 1;
    const failure = error ?? new Error('refused by the open circuit');
    const decision = decideFailure(
      {
        refused,
        circuit: circuit.state,
        breakerEnabled: circuit.enabled,
        retriable: refused || this.#hooks.isRetriable(failure),
        attempts: d.attempts,
        failedCalls: d.failedCalls,
        maxAttempts: o.retry.maxAttempts,
        served: tally.served(d.mark),
        stalled: tally.stalled(o.clock.now(), circuit.checksHealth),
        healthCheck: circuit.checksHealth,
        deadLetter: o.deadLetter !== undefined,
      },
      o.retry,
    );
    switch (decision.kind) {
      case 'wait-circuit': {
        if (!refused) d.attempts -= 1;
        if (decision.blame) d.blamed = true;
        if (refused || circuit.state === 'open') {
          return this.#park(d, free, this.#waits.forChange(d));
        }
        return this.#park(d, free, Promise.resolve());
      }
      case 'retry':
        if (!decision.charged) d.attempts -= 1;
        else {
          this.#hooks.emit('message.retry', {
            topic: d.message.topic,
            partition: d.message.partition,
            offset: d.message.offset,
            attempt: d.attempts,
            delayMs: decision.delayMs,
            error: failure,
          });
        }
        return this.#park(d, free, this.#hooks.sleep(decision.delayMs));
      case 'dead-letter':
        if (decision.guess) tally.guessed();
        return this.#toDeadLetter(d, free, failure, decision.reason, undefined, decision.guess);
      case 'check-health':
        tally.guessed();
        d.attempts -= 1;
        return this.#checkHealth(d, free, failure);
      case 'hold':
        return this.#park(
          d,
          free,
          holdAndWait(d, failure, this.#options.retry.maxDelayMs, this.#hooks),
        );
    }
  }

  /**
   * Every message that could run is failing: the health check says whether
   * the downstream works. If it does, this message is poison; if not, the
   * circuit opens and the message waits for it like the rest.
   */
  #checkHealth(d: Delivery, free: (done: boolean) => void, failure: Error): void {
    free(false);
    const circuit = this.#circuit;
    const answered = (healthy: boolean): void => {
      if (this.#hooks.abandoned(d)) return this.#end(d, false);
      if (healthy) {
        this.tally.healthy();
        d.attempts += 1;
        return this.#toDeadLetter(d, noop, failure, 'attempts-exhausted');
      }
      circuit.open();
      d.blamed = true;
      this.#park(d, noop, this.#waits.forChange(d));
    };
    void circuit
      .checkHealth()
      .then(answered)
      .catch((unexpected: unknown) => {
        // Not expected (the check's own errors count as down): reported, and
        // the message comes round again rather than waiting for nothing.
        this.#hooks.error(toError(unexpected));
        this.#dispatcher.requeue(d);
      });
  }
}

function noop(): void {}
