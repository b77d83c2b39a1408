import type { MessageRef, ShedEvent } from '../events.js';

/**
 * Opt-in load shedding: a message older than `maxAgeMs` when it comes up for
 * processing is not worth handling any more (its result would arrive too
 * late to matter), so it is dead-lettered or skipped, with an event, and
 * its offset counts as done. Pure: the consumer passes the wall clock.
 */

export type ShedAction = 'dead-letter' | 'skip';
export const SHED_ACTIONS: readonly ShedAction[] = ['dead-letter', 'skip'];

export interface ShedOptions {
  /**
   * Age (now minus the message's Kafka timestamp, on the wall clock) above
   * which a message is shed instead of handled.
   */
  readonly maxAgeMs: number;
  /**
   * `dead-letter`: written to the dead-letter topic with `x-bp-reason: shed`
   * (requires the `deadLetter` option). `skip`: dropped. Both emit
   * `message.shed`. No default: dropping data must be a choice.
   */
  readonly action: ShedAction;
}

/**
 * How old a message is, in ms: `nowMs` minus its timestamp (ms since the
 * epoch, as KafkaJS gives it, CreateTime or LogAppendTime). Undefined when
 * the message has no usable timestamp (`-1` from old message formats).
 * Negative when the producer's clock is ahead of ours.
 */
export function messageAgeMs(timestamp: string, nowMs: number): number | undefined {
  // Number('') is 0: an empty string is no timestamp, not the epoch.
  const ms = timestamp === '' ? Number.NaN : Number(timestamp);
  if (!Number.isFinite(ms) || ms < 0) return undefined;
  return nowMs - ms;
}

/** The age of a message to shed, or undefined when it is young enough (or has no timestamp). */
export function shedAge(timestamp: string, nowMs: number, maxAgeMs: number): number | undefined {
  const age = messageAgeMs(timestamp, nowMs);
  return age !== undefined && age > maxAgeMs ? age : undefined;
}

/** The `message.shed` event of a message shed at `ageMs`. */
export function shedEvent(
  message: MessageRef & { readonly timestamp: string },
  ageMs: number,
  shed: ShedOptions,
): ShedEvent {
  return {
    topic: message.topic,
    partition: message.partition,
    offset: message.offset,
    timestamp: message.timestamp,
    ageMs,
    maxAgeMs: shed.maxAgeMs,
    action: shed.action,
  };
}
