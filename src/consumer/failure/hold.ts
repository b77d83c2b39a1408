import type { PartitionState } from '../admission/partitions.js';
import type { Delivery } from '../dispatch/delivery.js';
import type { MessageFailedEvent } from '../events.js';

export interface HoldHooks {
  /** The message holds its partition (`on`), or stops holding it. */
  hold(state: PartitionState, reason: 'message-failed', on: boolean): void;
  emit(event: 'message.failed', payload: MessageFailedEvent): void;
  /** Resolves after `ms`, early when the consumer abandons in-flight work. */
  sleep(ms: number): Promise<void>;
}

/**
 * A message failed and there is no dead-letter topic: losing it is not an
 * option, so its partition holds at it (`message-failed`), `message.failed`
 * says so, and it is tried again after `retryInMs`. Resolves when it may
 * run again; the hold ends then (or when the consumer abandons it).
 */
export async function holdAndWait(
  d: Delivery,
  error: Error,
  retryInMs: number,
  hooks: HoldHooks,
): Promise<void> {
  hooks.hold(d.state, 'message-failed', true);
  try {
    hooks.emit('message.failed', {
      topic: d.message.topic,
      partition: d.message.partition,
      offset: d.message.offset,
      attempts: d.attempts,
      error,
      retryInMs,
    });
    await hooks.sleep(retryInMs);
  } finally {
    hooks.hold(d.state, 'message-failed', false);
  }
}
