import { BackpressureError, DlqPublishError, isBackpressureError, toError } from '../../errors.js';
import type { DlqFailedEvent, DlqRoutedEvent } from '../events.js';
import type { InboundMessage, ResolvedOptions } from '../options.js';
import { deadLetterMessage } from './dead-letter-record.js';
import { backoffDelay } from './retry.js';

export type DeadLetterReason = DlqRoutedEvent['reason'];

type DeadLetterSettings = NonNullable<ResolvedOptions<unknown>['deadLetter']>;

export interface DeadLetterHooks {
  groupId(): string;
  /** The message's partition holds at it (`dlq-unavailable`) from the first failed write until it is written. */
  hold(on: boolean): void;
  /** Resolves after `ms`, early when the consumer abandons in-flight work. */
  sleep(ms: number): Promise<void>;
  /** True once the message is no longer ours to finish (revoked or abandoned on close). */
  abandoned(): boolean;
  routed(event: DlqRoutedEvent): void;
  failed(event: DlqFailedEvent): void;
}

/**
 * Writes a message to its dead-letter topic and resolves true once the
 * broker acknowledged it, so its offset may count as done. A write that
 * fails holds the partition at that offset and is retried with backoff,
 * forever: losing the message is not an option. Resolves false when the
 * message was abandoned meanwhile. `guess`: dead-lettered without evidence
 * (a header and the event say so).
 */
export async function deadLetter(
  settings: DeadLetterSettings,
  message: InboundMessage<unknown>,
  error: Error,
  reason: DeadLetterReason,
  attempts: number,
  hooks: DeadLetterHooks,
  guess = false,
): Promise<boolean> {
  const chooseTopic = (): string | BackpressureError => {
    try {
      return settings.topic(message);
    } catch (chooserError) {
      return new BackpressureError(
        'ERR_DLQ_PUBLISH',
        `deadLetter.topic chooser failed: ${toError(chooserError).message}`,
        { cause: chooserError },
      );
    }
  };
  let topic = chooseTopic();
  let failures = 0;
  let holding = false;
  try {
    for (;;) {
      if (hooks.abandoned()) return false;
      try {
        if (typeof topic !== 'string') throw topic;
        await settings.producer.send({
          topic,
          acks: -1,
          messages: [
            deadLetterMessage(message, {
              groupId: hooks.groupId(),
              reason,
              error,
              attempts,
              failedAt: new Date(),
              includeStack: settings.includeStack,
              maxStackLength: settings.maxStackLength,
              guess,
            }),
          ],
        });
        hooks.routed({
          topic: message.topic,
          partition: message.partition,
          offset: message.offset,
          dlqTopic: topic,
          reason,
          attempts,
          error,
          ...(guess ? { guess } : {}),
        });
        return true;
      } catch (sendError) {
        failures += 1;
        if (!holding) {
          holding = true;
          hooks.hold(true);
        }
        const retryInMs = backoffDelay(failures, {
          initialDelayMs: settings.retryInitialDelayMs,
          maxDelayMs: settings.retryMaxDelayMs,
          multiplier: 2,
          jitter: 0.2,
        });
        hooks.failed({
          topic: message.topic,
          partition: message.partition,
          offset: message.offset,
          dlqTopic: typeof topic === 'string' ? topic : '',
          error:
            isBackpressureError(sendError) && sendError.code === 'ERR_DLQ_PUBLISH'
              ? sendError
              : new DlqPublishError(typeof topic === 'string' ? topic : '', sendError),
          failures,
          retryInMs,
        });
        await hooks.sleep(retryInMs);
        if (typeof topic !== 'string') topic = chooseTopic();
      }
    }
  } finally {
    if (holding) hooks.hold(false);
  }
}
