import { HandlerTimeoutError } from '../../errors.js';
import type { Clock } from '../../shared/clock.js';
import type { HandlerContext, InboundMessage, MessageHandler } from '../options.js';

/**
 * How an attempt ended: `failed` false, or what the handler threw (any
 * value), or the reason its deadline or close gave; when (`now`, on the
 * consumer's clock) and after how long.
 */
export type AttemptEnded = (
  failed: boolean,
  thrown: unknown,
  now: number,
  durationMs: number,
) => void;

/**
 * Calls the handler under a deadline. Per attempt this costs no timer,
 * listener or AbortController: every attempt shares one timeout, so the
 * oldest running attempt always expires first and one timer over the
 * running list keeps every deadline. The handler's signal is made only
 * when the handler reads it.
 */
export class Attempts {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #handler: MessageHandler<unknown>;
  readonly #running = new RunningAttempts();
  #timer: NodeJS.Timeout | undefined;
  /** Called as each attempt ends, with its duration: the latency window's feed. */
  readonly #ended: (durationMs: number, now: number) => void;

  constructor(
    clock: Clock,
    timeoutMs: number,
    handler: MessageHandler<unknown>,
    ended: (durationMs: number, now: number) => void,
  ) {
    this.#clock = clock;
    this.#timeoutMs = timeoutMs;
    this.#handler = handler;
    this.#ended = ended;
  }

  /**
   * Calls the handler once and reports how the attempt ended to `ended`,
   * exactly once. `now` is a clock reading taken a moment ago, if the
   * caller has one (a clock read is a measurable part of a fast message).
   */
  run(message: InboundMessage<unknown>, attempt: number, ended: AttemptEnded, now?: number): void {
    const live = new LiveAttempt(this, now ?? this.#clock.now(), this.#timeoutMs, ended);
    this.#running.add(live);
    if (this.#timer === undefined) this.#arm();
    let result: unknown;
    try {
      result = this.#handler(message, new AttemptContext(attempt, live));
    } catch (thrown) {
      // A handler that throws synchronously is treated like one that rejects.
      live.end(true, thrown);
      return;
    }
    if (result === undefined) {
      live.end(false, undefined);
      return;
    }
    Promise.resolve(result).then(
      () => live.end(false, undefined),
      (thrown: unknown) => live.end(true, thrown),
    );
  }

  /** Ends every running attempt with `reason` (close gave up waiting) and aborts their signals. */
  abortAll(reason: Error): void {
    for (const live of this.#running.takeAll()) live.fail(reason);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** @internal From {@link LiveAttempt}: stamps the end, leaves the running list. */
  settled(live: LiveAttempt): number {
    this.#running.remove(live);
    const now = this.#clock.now();
    this.#ended(now - live.started, now);
    return now;
  }

  /** Keeps one timer set for the oldest running attempt's deadline. */
  #arm(): void {
    const oldest = this.#running.oldest;
    if (oldest === undefined) return;
    const delay = Math.max(0, oldest.deadline - this.#clock.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = this.#clock.now();
      for (let live = this.#running.oldest; live !== undefined; live = this.#running.oldest) {
        if (live.deadline > now) break;
        this.#running.remove(live);
        live.fail(new HandlerTimeoutError(this.#timeoutMs));
      }
      this.#arm();
    }, delay);
    this.#timer.unref();
  }
}

/**
 * The running attempts in start order, which is deadline order. A list
 * linked through the attempts themselves: adding and removing one costs no
 * hashing and allocates nothing.
 */
class RunningAttempts {
  #head: LiveAttempt | undefined;
  #tail: LiveAttempt | undefined;

  get oldest(): LiveAttempt | undefined {
    return this.#head;
  }

  add(live: LiveAttempt): void {
    live.prev = this.#tail;
    live.next = undefined;
    if (this.#tail === undefined) this.#head = live;
    else this.#tail.next = live;
    this.#tail = live;
  }

  /** Removes `live` if it is in the list (removing twice is harmless). */
  remove(live: LiveAttempt): void {
    if (live.prev === undefined && this.#head !== live) return;
    if (live.prev === undefined) this.#head = live.next;
    else live.prev.next = live.next;
    if (live.next === undefined) this.#tail = live.prev;
    else live.next.prev = live.prev;
    live.prev = undefined;
    live.next = undefined;
  }

  takeAll(): LiveAttempt[] {
    const all: LiveAttempt[] = [];
    for (let live = this.#head; live !== undefined; live = live.next) all.push(live);
    for (const live of all) {
      live.prev = undefined;
      live.next = undefined;
    }
    this.#head = undefined;
    this.#tail = undefined;
    return all;
  }
}

/** A running handler attempt: its deadline, and its signal once the handler asked for it. */
class LiveAttempt {
  readonly started: number;
  readonly deadline: number;
  prev: LiveAttempt | undefined = undefined;
  next: LiveAttempt | undefined = undefined;
  readonly #owner: Attempts;
  readonly #ended: AttemptEnded;
  #controller: AbortController | undefined;
  #reason: Error | undefined;
  #settled = false;

  constructor(owner: Attempts, started: number, timeoutMs: number, ended: AttemptEnded) {
    this.#owner = owner;
    this.started = started;
    this.deadline = started + timeoutMs;
    this.#ended = ended;
  }

  signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** The handler settled; ignored once the attempt already ended (timed out or aborted). */
  end(failed: boolean, thrown: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    const now = this.#owner.settled(this);
    this.#ended(failed, thrown, now, now - this.started);
  }

  /** Ends the attempt with `reason` (timeout or close) and aborts its signal. */
  fail(reason: Error): void {
    if (this.#settled) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.end(true, reason);
  }
}

/** What the handler gets besides the message. The signal is made on first read. */
class AttemptContext implements HandlerContext {
  readonly attempt: number;
  readonly #live: LiveAttempt;

  constructor(attempt: number, live: LiveAttempt) {
    this.attempt = attempt;
    this.#live = live;
  }

  get signal(): AbortSignal {
    return this.#live.signal();
  }
}
