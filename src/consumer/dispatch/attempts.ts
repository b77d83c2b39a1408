import { HandlerTimeoutError } from '../../errors.js';
import type { Clock } from '../../shared/clock.js';
import { handleChannel, traceEnded, type HandleTraceContext } from '../../shared/tracing.js';
import type { HandlerContext, InboundMessage } from '../options.js';
import { isThenable } from '../../shared/thenable.js';

/**
 * Where an attempt's end is reported: `failed` false with what the handler
 * resolved to (a batch handler's result), or what the handler threw (any
 * value), or the reason its deadline or close gave; when (`now`, on the
 * consumer's clock) and after how long. `token` is what the caller
 * passed to {@link Attempts.run}: reporting to one sink with a token, rather
 * than to a callback made per attempt, allocates nothing per message.
 */
export interface AttemptSink<K> {
  attemptEnded(token: K, failed: boolean, thrown: unknown, now: number, durationMs: number): void;
}

/**
 * Calls the handler under a deadline. Per attempt this costs no timer,
 * listener or AbortController: every attempt shares one timeout, so the
 * oldest running attempt always expires first and one timer over the
 * running list keeps every deadline. The handler's signal is made only
 * when the handler reads it.
 */
export class Attempts<K, A = InboundMessage<unknown>> {
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  /** Called with one message, or with a batch of them (`A` is then an array). */
  readonly #handler: (argument: A, context: HandlerContext) => unknown;
  readonly #sink: AttemptSink<K>;
  /** Called as each attempt ends, with its duration: the latency window's feed. */
  readonly #measured: (durationMs: number, now: number) => void;
  /** The consumer group, for tracing. */
  readonly #groupId: () => string;
  /** The running attempts in start order, which is deadline order. */
  #oldest: LiveAttempt<K> | undefined;
  #newest: LiveAttempt<K> | undefined;
  #timer: NodeJS.Timeout | undefined;

  constructor(
    clock: Clock,
    timeoutMs: number,
    handler: (argument: A, context: HandlerContext) => unknown,
    sink: AttemptSink<K>,
    measured: (durationMs: number, now: number) => void,
    groupId: () => string = () => '',
  ) {
    this.#groupId = groupId;
    this.#clock = clock;
    this.#timeoutMs = timeoutMs;
    this.#handler = handler;
    this.#sink = sink;
    this.#measured = measured;
  }

  /** Calls the handler once; its end reaches `sink` (the constructor's by default) exactly once. */
  run(message: A, attempt: number, token: K, sink: AttemptSink<K> = this.#sink): void {
    const now = this.#clock.now();
    const live = new LiveAttempt(this, attempt, now, now + this.#timeoutMs, sink, token);
    this.#link(live);
    if (this.#timer === undefined) this.#arm();
    let result: unknown;
    try {
      result = handleChannel.hasSubscribers
        ? this.#traced(message, attempt, live)
        : this.#handler(message, live);
    } catch (thrown) {
      // A handler that throws synchronously is treated like one that rejects.
      live.end(true, thrown);
      return;
    }
    if (result === undefined || !isThenable(result)) {
      live.end(false, result);
      return;
    }
    result.then(
      (value: unknown) => live.end(false, value),
      (thrown: unknown) => live.end(true, thrown),
    );
  }

  /** The handler called within the `handle` channel's stores; its end is published as the attempt ends. */
  #traced(message: A, attempt: number, live: LiveAttempt<K>): unknown {
    const context: HandleTraceContext = Array.isArray(message)
      ? {
          message: message[0] as InboundMessage<unknown>,
          messages: message as InboundMessage<unknown>[],
          groupId: this.#groupId(),
          attempt,
        }
      : { message: message as InboundMessage<unknown>, groupId: this.#groupId(), attempt };
    live.traced(context);
    try {
      return handleChannel.start.runStores(context, this.#handler, undefined, message, live);
    } finally {
      handleChannel.end.publish(context);
    }
  }

  /** Ends every running attempt with `reason` (close gave up waiting) and aborts their signals. */
  abortAll(reason: Error): void {
    const all: LiveAttempt<K>[] = [];
    for (let live = this.#oldest; live !== undefined; live = live.next) all.push(live);
    for (const live of all) live.fail(reason);
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** @internal From {@link LiveAttempt}: leaves the running list and stamps the end. */
  settled(live: LiveAttempt<K>): number {
    this.#unlink(live);
    const now = this.#clock.now();
    this.#measured(now - live.started, now);
    return now;
  }

  #link(live: LiveAttempt<K>): void {
    live.prev = this.#newest;
    if (this.#newest === undefined) this.#oldest = live;
    else this.#newest.next = live;
    this.#newest = live;
  }

  #unlink(live: LiveAttempt<K>): void {
    if (live.prev === undefined && this.#oldest !== live) return;
    if (live.prev === undefined) this.#oldest = live.next;
    else live.prev.next = live.next;
    if (live.next === undefined) this.#newest = live.prev;
    else live.next.prev = live.prev;
    live.prev = undefined;
    live.next = undefined;
  }

  /** Keeps one timer set for the oldest running attempt's deadline. */
  #arm(): void {
    const oldest = this.#oldest;
    if (oldest === undefined) return;
    const delay = Math.max(0, oldest.deadline - this.#clock.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const now = this.#clock.now();
      for (let live = this.#oldest; live !== undefined; live = this.#oldest) {
        if (live.deadline > now) break;
        live.fail(new HandlerTimeoutError(this.#timeoutMs));
      }
      this.#arm();
    }, delay);
    this.#timer.unref();
  }
}

/**
 * A running handler attempt, and the context the handler receives: its
 * attempt number and, made on first read, its signal. What the pipeline
 * keeps about it is private, so a handler that logs its context sees only
 * those two.
 */
class LiveAttempt<K> implements HandlerContext {
  readonly attempt: number;
  readonly #owner: { settled(live: LiveAttempt<K>): number };
  readonly #sink: AttemptSink<K>;
  readonly #token: K;
  readonly #started: number;
  readonly #deadline: number;
  #prev: LiveAttempt<K> | undefined = undefined;
  #next: LiveAttempt<K> | undefined = undefined;
  #controller: AbortController | undefined;
  #reason: Error | undefined;
  #settled = false;
  /** Set only while a tracing subscriber listens. */
  #trace: HandleTraceContext | undefined = undefined;

  constructor(
    owner: { settled(live: LiveAttempt<K>): number },
    attempt: number,
    started: number,
    deadline: number,
    sink: AttemptSink<K>,
    token: K,
  ) {
    this.attempt = attempt;
    this.#owner = owner;
    this.#started = started;
    this.#deadline = deadline;
    this.#sink = sink;
    this.#token = token;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#reason !== undefined) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  /** @internal */
  get started(): number {
    return this.#started;
  }

  /** @internal */
  get deadline(): number {
    return this.#deadline;
  }

  /** @internal Links of the running list. */
  get prev(): LiveAttempt<K> | undefined {
    return this.#prev;
  }

  set prev(value: LiveAttempt<K> | undefined) {
    this.#prev = value;
  }

  /** @internal */
  get next(): LiveAttempt<K> | undefined {
    return this.#next;
  }

  set next(value: LiveAttempt<K> | undefined) {
    this.#next = value;
  }

  /** @internal The attempt is traced: its end is published on the `handle` channel. */
  traced(context: HandleTraceContext): void {
    this.#trace = context;
  }

  /** The handler settled; ignored once the attempt already ended (timed out or aborted). */
  end(failed: boolean, thrown: unknown): void {
    if (this.#settled) return;
    this.#settled = true;
    if (this.#trace !== undefined) traceEnded(handleChannel, this.#trace, failed, thrown);
    const now = this.#owner.settled(this);
    this.#sink.attemptEnded(this.#token, failed, thrown, now, now - this.#started);
  }

  /** Ends the attempt with `reason` (timeout or close) and aborts its signal. */
  fail(reason: Error): void {
    if (this.#settled) return;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.end(true, reason);
  }
}
