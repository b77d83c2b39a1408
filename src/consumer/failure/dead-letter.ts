import { BackpressureError, DlqPublishError, isBackpressureError, toError } from '../../errors.js';
import type { PartitionState } from '../admission/partitions.js';
import type { Delivery } from '../dispatch/delivery.js';
import type { ConsumerEvents, DlqRoutedEvent } from '../events.js';
import type { ResolvedOptions } from '../options.js';
import { deadLetterChannel } from '../../shared/tracing.js';
import { deadLetterMessage } from './dead-letter-record.js';
import { backoffDelay } from './retry.js';

export type DeadLetterReason = DlqRoutedEvent['reason'];

type DeadLetterSettings = NonNullable<ResolvedOptions<unknown>['deadLetter']>;

export interface DeadLetterHooks {
  groupId(): string;
  /** The message's partition holds at it (`dlq-unavailable`) from the first failed write until it is written. */
  hold(state: PartitionState, reason: 'dlq-unavailable', on: boolean): void;
  /** Resolves after `ms`, early when the consumer abandons in-flight work. */
  sleep(ms: number): Promise<void>;
  /** True once the message is no longer ours to finish (revoked or abandoned on close). */
  abandoned(d: Delivery): boolean;
  emit<E extends 'dlq.routed' | 'dlq.failed'>(
    event: E,
    payload: Parameters<ConsumerEvents[E]>[0],
  ): void;
}

/**
 * Writes a message to its dead-letter topic and resolves true once the
 * broker acknowledged it, so its offset may count as done. A write that
 * fails holds the partition at that offset and is retried with backoff,
 * forever: losing the message is not an option. Resolves false when the
 * message was abandoned meanwhile. `guess`: dead-lettered without evidence
 * (a header and the event say so). Traced on the dead-letter channel when
 * it has subscribers.
 */
export function deadLetter(
  settings: DeadLetterSettings,
  d: Delivery,
  error: Error,
  reason: DeadLetterReason,
  hooks: DeadLetterHooks,
  guess = false,
): Promise<boolean> {
  const route = () => write(settings, d, error, reason, hooks, guess);
  if (!deadLetterChannel.hasSubscribers) return route();
  return deadLetterChannel.tracePromise(route, {
    message: d.message,
    groupId: hooks.groupId(),
    reason,
    cause: error,
    attempts: d.attempts,
  });
}

async function write(
  settings: DeadLetterSettings,
  d: Delivery,
  error: Error,
  reason: DeadLetterReason,
  hooks: DeadLetterHooks,
  guess: boolean,
): Promise<boolean> {
  const { message, attempts } = d;
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
      if (hooks.abandoned(d)) return false;
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
        hooks.emit('dlq.routed', {
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
          hooks.hold(d.state, 'dlq-unavailable', true);
        }
        const retryInMs = backoffDelay(failures, {
          initialDelayMs: settings.retryInitialDelayMs,
          maxDelayMs: settings.retryMaxDelayMs,
          multiplier: 2,
          jitter: 0.2,
        });
        hooks.emit('dlq.failed', {
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
    if (holding) hooks.hold(d.state, 'dlq-unavailable', false);
  }
}
