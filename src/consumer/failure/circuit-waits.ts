import type { Delivery } from '../dispatch/delivery.js';
import type { Circuit } from './breaker.js';
import type { FailureTally } from './tally.js';

/**
 * What a message waits for while the circuit is not plainly closed, and in
 * which order the waiting messages come back. Each method returns the
 * promise the message is parked on; the runner parks it.
 *
 * A message that failed while the circuit was not closed (blamed), or has
 * failed all its attempts, probes only when no other message waits to: its
 * failure would tell nothing new, and it would otherwise be the probe every
 * time.
 */
export class CircuitWaits {
  readonly #circuit: Circuit;
  readonly #tally: FailureTally;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #trialWaitMs: number;
  /** Messages that probe first waiting for the circuit, or woken and not run yet. */
  #fresh = 0;

  /** @param trialWaitMs how long an exhausted message waits on a trial close (`resetTimeoutMs`) */
  constructor(
    circuit: Circuit,
    tally: FailureTally,
    sleep: (ms: number) => Promise<void>,
    trialWaitMs: number,
  ) {
    this.#circuit = circuit;
    this.#tally = tally;
    this.#sleep = sleep;
    this.#trialWaitMs = trialWaitMs;
  }

  /** The message runs again: it no longer counts among those waiting. */
  woke(d: Delivery): void {
    if (!d.waitingForCircuit) return;
    d.waitingForCircuit = false;
    this.#fresh -= 1;
  }

  probesLast(d: Delivery): boolean {
    return d.blamed || !this.#tally.telling(d);
  }

  /** Half-open: whether this message must let another probe first. */
  yieldsProbe(d: Delivery): boolean {
    return this.#fresh > 0 && this.probesLast(d);
  }

  /**
   * Until the circuit changes; blamed messages wake after the others. A
   * refusal can arrive (through a promise) after the probe that caused it
   * already closed the circuit: then there is no change left to wait for,
   * and the message runs again at once.
   */
  forChange(d: Delivery): Promise<unknown> {
    if (this.#circuit.state === 'closed') return Promise.resolve();
    const last = this.probesLast(d);
    if (!last) {
      d.waitingForCircuit = true;
      this.#fresh += 1;
    }
    return this.#circuit.changed({ last });
  }

  /**
   * Whether a message must wait out the circuit's trial close: it has
   * failed all its attempts, and has not waited in this trial yet.
   */
  waitsForTrial(d: Delivery): boolean {
    const circuit = this.#circuit;
    return circuit.onTrial && !this.#tally.telling(d) && d.waitedForTrial !== circuit.trials;
  }

  /**
   * The circuit is closed on trial (its probe told nothing) and this
   * message has failed all its attempts: it waits until something else
   * shows whether the downstream works (a success ends the trial, a
   * counted failure reopens the circuit), so that the messages fetched
   * meanwhile, whose calls tell, run first. Without any, it runs after
   * `resetTimeoutMs`: then its own failure reopens the circuit.
   */
  forTrial(d: Delivery): Promise<unknown> {
    d.waitedForTrial = this.#circuit.trials;
    return Promise.race([this.#circuit.changed({ last: true }), this.#sleep(this.#trialWaitMs)]);
  }
}
