/**
 * The demo's producer: orders at a chosen rate through the library's
 * RateLimitedProducer (its token bucket does the pacing), plus poison
 * messages on request. Every message carries its sequence number in a
 * `demo-id` header, so the summary can account for each one: handled,
 * dead-lettered, duplicated or lost.
 */
import type { Message, Producer } from 'kafkajs';
import { RateLimitedProducer } from '../../src/index.js';

/** `malformed`: not JSON (fails to deserialize). `invalid`: JSON that fails validation. */
export type MessageKind = 'order' | 'malformed' | 'invalid';

export interface Order {
  readonly id: number;
  readonly customer: string;
  readonly amount: number;
}

export const ID_HEADER = 'demo-id';
const CUSTOMERS = 500;

export class Load {
  readonly #raw: Producer;
  readonly #limited: RateLimitedProducer;
  readonly #topic: string;
  readonly #onFailure: (error: Error) => void;
  #nextId = 0;
  #rate: number;
  #running = false;
  #loop: Promise<void> = Promise.resolve();
  #outstanding = 0;
  #wake: (() => void) | undefined;
  readonly #injected: MessageKind[] = [];
  /** Acknowledged by the broker: id -> kind. */
  readonly acked = new Map<number, MessageKind>();
  failed = 0;

  constructor(raw: Producer, topic: string, rate: number, onFailure: (error: Error) => void) {
    this.#raw = raw;
    this.#topic = topic;
    this.#rate = rate;
    this.#onFailure = onFailure;
    this.#limited = new RateLimitedProducer(raw, {
      messagesPerSecond: rate,
      // The raw producer also writes dead letters: it stays connected.
      disconnectOnClose: false,
    });
  }

  get producer(): RateLimitedProducer {
    return this.#limited;
  }

  get rate(): number {
    return this.#rate;
  }

  get running(): boolean {
    return this.#running;
  }

  get produced(): number {
    return this.acked.size;
  }

  setRate(rate: number): void {
    this.#rate = rate;
    this.#limited.setLimits({ messagesPerSecond: rate });
  }

  /** Starts (or keeps) producing at the current rate. */
  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#loop = this.#run();
  }

  /** Stops producing and waits until everything accepted is acknowledged. */
  async stop(): Promise<void> {
    this.#running = false;
    this.#wake?.();
    await this.#loop;
    await this.#limited.flush();
  }

  /** Queues messages of these kinds ahead of the regular orders. */
  inject(kinds: readonly MessageKind[]): void {
    this.#injected.push(...kinds);
  }

  /** Writes `count` orders at once, unpaced (a backlog for a step run alone). */
  async backlog(count: number): Promise<void> {
    for (let sent = 0; sent < count; sent += 500) {
      const batch = Array.from({ length: Math.min(500, count - sent) }, () =>
        this.#message('order'),
      );
      await this.#raw.send({ topic: this.#topic, acks: -1, messages: batch.map((b) => b.message) });
      for (const b of batch) this.acked.set(b.id, 'order');
    }
  }

  async close(): Promise<void> {
    await this.stop();
    await this.#limited.close();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      // About a quarter second of messages waits in the producer's buffer:
      // enough to keep it busy, little enough that a new rate applies at once.
      if (this.#outstanding >= Math.ceil(this.#rate / 4) + 2) {
        await new Promise<void>((resolve) => (this.#wake = resolve));
        continue;
      }
      const { id, kind, message } = this.#message(this.#injected.shift() ?? 'order');
      this.#outstanding += 1;
      this.#limited
        .send({ topic: this.#topic, acks: -1, messages: [message] })
        .then(
          () => void this.acked.set(id, kind),
          (error: unknown) => {
            this.failed += 1;
            this.#onFailure(error instanceof Error ? error : new Error(String(error)));
          },
        )
        .finally(() => {
          this.#outstanding -= 1;
          const wake = this.#wake;
          this.#wake = undefined;
          wake?.();
        });
      // Let the send be admitted before the next one is formed.
      await Promise.resolve();
    }
  }

  #message(kind: MessageKind): { id: number; kind: MessageKind; message: Message } {
    const id = this.#nextId++;
    const customer = `customer-${Math.floor(Math.random() * CUSTOMERS)}`;
    // 0.01 to 200.00: never 0, which the billing handler rejects as it
    // rejects the poison's negative amounts (a rounded 0 once made a valid
    // order look like poison, about one run in seventy).
    const amount = (1 + Math.floor(Math.random() * 20_000)) / 100;
    let value: string;
    if (kind === 'malformed') value = `{"id":${id},"customer":"${customer}","amount":`;
    else if (kind === 'invalid') value = JSON.stringify({ id, customer, amount: -amount });
    else value = JSON.stringify({ id, customer, amount } satisfies Order);
    return { id, kind, message: { key: customer, value, headers: { [ID_HEADER]: String(id) } } };
  }
}
