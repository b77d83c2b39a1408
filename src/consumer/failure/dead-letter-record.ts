import type { IHeaders, Message } from 'kafkajs';
import type { InboundMessage } from '../options.js';

/** Prefix of every header the library adds to a dead letter. */
export const DLQ_HEADER_PREFIX = 'x-bp-';

/** The headers a dead letter carries, besides the original message's own. */
export const DLQ_HEADERS = {
  originalTopic: `${DLQ_HEADER_PREFIX}original-topic`,
  originalPartition: `${DLQ_HEADER_PREFIX}original-partition`,
  originalOffset: `${DLQ_HEADER_PREFIX}original-offset`,
  originalTimestamp: `${DLQ_HEADER_PREFIX}original-timestamp`,
  consumerGroup: `${DLQ_HEADER_PREFIX}consumer-group`,
  reason: `${DLQ_HEADER_PREFIX}reason`,
  errorName: `${DLQ_HEADER_PREFIX}error-name`,
  errorMessage: `${DLQ_HEADER_PREFIX}error-message`,
  errorStack: `${DLQ_HEADER_PREFIX}error-stack`,
  attempts: `${DLQ_HEADER_PREFIX}attempts`,
  failedAt: `${DLQ_HEADER_PREFIX}failed-at`,
  /** `true` when the consumer dead-lettered it on a guess (see `dlq.routed`'s `guess`); absent otherwise. */
  guess: `${DLQ_HEADER_PREFIX}guess`,
} as const;

const MAX_ERROR_MESSAGE = 4000;

export interface DeadLetterDetails {
  readonly groupId: string;
  readonly reason: string;
  readonly error: Error;
  readonly attempts: number;
  readonly failedAt: Date;
  readonly includeStack: boolean;
  readonly maxStackLength: number;
  /** Dead-lettered without evidence that the downstream works. */
  readonly guess?: boolean;
}

/** The dead letter: the original key, value and headers, plus where it came from and why it failed. */
export function deadLetterMessage(
  message: InboundMessage<unknown>,
  details: DeadLetterDetails,
): Message {
  const headers: IHeaders = { ...message.headers };
  headers[DLQ_HEADERS.originalTopic] = message.topic;
  headers[DLQ_HEADERS.originalPartition] = String(message.partition);
  headers[DLQ_HEADERS.originalOffset] = message.offset;
  headers[DLQ_HEADERS.originalTimestamp] = message.timestamp;
  headers[DLQ_HEADERS.consumerGroup] = details.groupId;
  headers[DLQ_HEADERS.reason] = details.reason;
  headers[DLQ_HEADERS.errorName] = details.error.name;
  headers[DLQ_HEADERS.errorMessage] = truncate(details.error.message, MAX_ERROR_MESSAGE);
  if (details.includeStack && details.error.stack) {
    headers[DLQ_HEADERS.errorStack] = truncate(details.error.stack, details.maxStackLength);
  }
  headers[DLQ_HEADERS.attempts] = String(details.attempts);
  headers[DLQ_HEADERS.failedAt] = details.failedAt.toISOString();
  if (details.guess === true) headers[DLQ_HEADERS.guess] = 'true';
  return { key: message.key, value: message.value, headers };
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
