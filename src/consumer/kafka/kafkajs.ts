import type { Consumer } from 'kafkajs';
import type { ErrorEvent } from '../events.js';
import type { FlowPort } from '../flow/controller.js';
import { byTopic, type TopicPartition } from '../../shared/topic-partition.js';

/**
 * The narrow part of KafkaJS the flow controller drives. KafkaJS throws from
 * pause/resume before `run()` has set up the group and after it stopped;
 * those moments have nothing to pause, so the error is reported, not thrown
 * into the middle of a state change.
 */
export class KafkaConsumerPort implements FlowPort {
  readonly #consumer: Consumer;
  readonly #onError: (error: Error, during: ErrorEvent['during']) => void;

  constructor(consumer: Consumer, onError: (error: Error, during: ErrorEvent['during']) => void) {
    this.#consumer = consumer;
    this.#onError = onError;
  }

  pause(partitions: readonly TopicPartition[]): void {
    try {
      this.#consumer.pause(byTopic(partitions));
    } catch (error) {
      this.#onError(error as Error, 'pause');
    }
  }

  resume(partitions: readonly TopicPartition[]): void {
    try {
      this.#consumer.resume(byTopic(partitions));
    } catch (error) {
      this.#onError(error as Error, 'resume');
    }
  }
}
