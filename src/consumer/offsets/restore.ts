import { toError } from '../../errors.js';
import type { Logger } from '../../shared/logger.js';
import type { PartitionState } from '../admission/partitions.js';
import type { ConsumerClient } from '../kafka/port.js';
import { decodeProgress } from './progress-metadata.js';

/**
 * How long newly assigned partitions wait for their committed metadata
 * before starting from the plain offset. Their first batches wait for it,
 * heartbeats keep running meanwhile.
 */
export const RESTORE_TIMEOUT_MS = 10_000;

/**
 * Reads what the group committed for partitions new to this member and
 * hands each tracker the offsets its last owner marked done, so they are
 * skipped when fetched again. Every failure is logged and ends in the safe
 * case: the partition starts from the plain committed offset and redoes
 * what lies above it, as it would without metadata.
 *
 * Sets `state.restoring` on each partition until its answer is in; the
 * admitter waits on it before admitting the partition's first batch.
 */
export function restoreProgress(
  client: ConsumerClient,
  groupId: string,
  states: readonly PartitionState[],
  logger: Logger,
): void {
  if (client.fetchCommitted === undefined || states.length === 0) return;
  const read = client.fetchCommitted(
    groupId,
    states.map((s) => ({ topic: s.topic, partition: s.partition })),
  );
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), RESTORE_TIMEOUT_MS);
    timer.unref();
  });
  const done = Promise.race([read, timeout])
    .then(
      (answer) => {
        if (answer === 'timeout') {
          logger.warn(
            { groupId, timeoutMs: RESTORE_TIMEOUT_MS },
            'kafkajs-backpressure: committed metadata not read in time; starting from the committed offsets',
          );
          return;
        }
        if (answer === undefined) return;
        const byKey = new Map(states.map((s) => [s.key, s]));
        for (const entry of answer) {
          const state = byKey.get(`${entry.topic}|${entry.partition}`);
          const offset = Number(entry.offset);
          if (state === undefined || !Number.isSafeInteger(offset) || offset < 0) continue;
          const decoded = decodeProgress(entry.metadata, offset);
          if (decoded.kind === 'ignored') {
            logger.warn(
              { topic: entry.topic, partition: entry.partition, offset, reason: decoded.reason },
              'kafkajs-backpressure: ignored the metadata committed with an offset',
            );
          } else if (decoded.kind === 'ranges') {
            state.tracker.restore(decoded.done);
            logger.debug(
              {
                topic: entry.topic,
                partition: entry.partition,
                offset,
                ranges: decoded.done.length,
              },
              'kafkajs-backpressure: skipping offsets the last commit marked done',
            );
          }
        }
      },
      (error: unknown) => {
        logger.warn(
          { groupId, err: toError(error) },
          'kafkajs-backpressure: could not read committed metadata; starting from the committed offsets',
        );
      },
    )
    .finally(() => {
      clearTimeout(timer);
      for (const state of states) if (state.restoring === done) state.restoring = undefined;
    });
  for (const state of states) state.restoring = done;
}
