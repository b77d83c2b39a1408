/**
 * The bound on `producer.send` calls outstanding (`maxInFlightRequests`): a
 * counter whose grant is a synchronous check. The answer that frees a slot
 * and the request that takes it therefore meet in the same turn of the event
 * loop; a scheduler that grants through timers leaves the connection idle
 * between them, and KafkaJS answers a whole request at once, so that idle
 * time is a large share of an unlimited producer's time (docs/producer.md).
 *
 * The gate keeps no queue of its own: what waits for a slot is the buffer,
 * in arrival order, and the dispatcher asks again when a slot is released
 * or the limit grows. Lowering the limit never cuts a running request short:
 * no new grant is made until enough of them have been released.
 */
export class ConcurrencyGate {
  #limit: number;
  #active = 0;

  constructor(limit: number) {
    this.#limit = checked(limit);
  }

  /** Slots that may be held at once. */
  get limit(): number {
    return this.#limit;
  }

  /** Slots held now; above {@link limit} for a while after the limit was lowered. */
  get active(): number {
    return this.#active;
  }

  setLimit(limit: number): void {
    this.#limit = checked(limit);
  }

  /** Takes a slot if one is free, at once; false when the limit is reached. */
  tryAcquire(): boolean {
    if (this.#active >= this.#limit) return false;
    this.#active += 1;
    return true;
  }

  release(): void {
    if (this.#active === 0) throw new Error('ConcurrencyGate: release() without a held slot');
    this.#active -= 1;
  }
}

function checked(limit: number): number {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new RangeError(
      `ConcurrencyGate: the limit must be an integer of at least 1, got ${limit}`,
    );
  }
  return limit;
}
