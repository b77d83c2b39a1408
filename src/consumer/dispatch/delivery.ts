import type { PartitionState } from '../admission/partitions.js';
import type { EvidenceMark } from '../failure/evidence.js';
import type { RawMessage } from '../kafka/port.js';
import type { InboundMessage } from '../options.js';
import type { Segments } from './batch.js';
import type { LaneItem } from './lanes.js';

/**
 * One admitted message on its way through the pipeline: where it came
 * from, what it weighs, its lane, and how far its handling got (attempts,
 * failures). The handler gets `message`, a plain object of its own, so
 * nothing of the pipeline's bookkeeping shows where users log or spread it.
 */
export class Delivery implements LaneItem {
  readonly state: PartitionState;
  readonly raw: RawMessage;
  readonly offset: number;
  readonly bytes: number;
  readonly laneKey: string;
  readonly message: { payload: unknown } & InboundMessage<unknown>;
  /** The worker's release for the step running now (one function per worker, not per message). */
  free: ((done: boolean) => void) | undefined = undefined;
  /** Taken by a worker and not released yet. */
  working = false;
  /** It has come up for processing once (shedding is decided then). */
  started = false;
  /** Started, not ended, and its calls still tell something (see the runner's stall rule). */
  telling = false;
  /** Started, not ended, and it has failed `maxAttempts` calls. */
  exhausted = false;
  /** Charged handler attempts so far. */
  attempts = 0;
  /** Failed handler calls so far, charged or not (a message that has failed `maxAttempts` is exhausted). */
  failedCalls = 0;
  /** Whether `deserialize` has produced the payload. */
  deserialized = false;
  /** It failed while the circuit was not closed: it waits behind fresh ones for a half-open probe. */
  blamed = false;
  /** Parked for the circuit without being blamed: counted until it runs again. */
  waitingForCircuit = false;
  /** The circuit's trial (its count of closes on trial) it waited for once: in that trial it runs regardless. */
  waitedForTrial = 0;
  /** Where its evidence begins (set at its first failure): what others did since tells poison from outage. */
  mark: EvidenceMark | undefined = undefined;
  /** With `batchHandler`: runs alone from now on (taken alone, or out of a failed batch). */
  alone = false;
  /** With `batchHandler`: the failed batch's parts it is among; told when it ends. */
  segments: Segments | undefined = undefined;
  /** With `batchHandler`: the error the batch handler reported for it, not yet acted on. */
  pendingError: Error | undefined = undefined;

  constructor(
    state: PartitionState,
    raw: RawMessage,
    offset: number,
    bytes: number,
    laneKey: string,
  ) {
    this.state = state;
    this.raw = raw;
    this.offset = offset;
    this.bytes = bytes;
    this.laneKey = laneKey;
    const value = raw.value ?? null;
    this.message = {
      topic: state.topic,
      partition: state.partition,
      offset: raw.offset,
      key: raw.key ?? null,
      value,
      headers: raw.headers ?? {},
      timestamp: raw.timestamp,
      payload: value,
    };
  }
}

/** Key + value + header names and values, in bytes: what the in-flight byte bound counts. */
export function sizeOf(message: RawMessage): number {
  let bytes = (message.key?.length ?? 0) + (message.value?.length ?? 0);
  const headers = message.headers;
  if (headers) {
    for (const name in headers) {
      bytes += name.length;
      const value = headers[name];
      if (value === undefined) continue;
      if (Array.isArray(value))
        for (const v of value) bytes += typeof v === 'string' ? Buffer.byteLength(v) : v.length;
      else bytes += typeof value === 'string' ? Buffer.byteLength(value) : value.length;
    }
  }
  return bytes;
}
