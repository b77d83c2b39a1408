import type { Message, ProducerRecord, RecordMetadata } from 'kafkajs';

/** One caller's `send()`, from the call until its promise settles. */
export interface PendingSend {
  readonly topic: string;
  readonly record: ProducerRecord;
  /** Records share a `producer.send` only with the same topic and the same acks, timeout and compression. */
  readonly batchKey: string;
  /** Its messages still in the buffer. */
  queued: number;
  /** `producer.send` calls carrying some of its messages and not answered yet. */
  inFlight: number;
  /** True once any of its messages was handed to KafkaJS: from then on an abort cannot take it back. */
  handedOver: boolean;
  readonly results: RecordMetadata[];
  settled: boolean;
  readonly resolve: (metadata: RecordMetadata[]) => void;
  readonly reject: (error: unknown) => void;
  /** Resolves once settled either way; `flush()` and `close()` wait on it. */
  readonly done: Promise<void>;
  readonly markDone: () => void;
  /** Removes the listener on the caller's `AbortSignal`, if any. */
  detach: (() => void) | undefined;
}

export interface QueuedMessage {
  readonly owner: PendingSend;
  readonly message: Message;
  readonly bytes: number;
  enqueuedAt: number;
}

/** What one `producer.send` call carries. */
export interface Batch {
  readonly topic: string;
  readonly record: ProducerRecord;
  readonly owners: ReadonlySet<PendingSend>;
  readonly messages: number;
  readonly bytes: number;
}

/** How large the next batch may be: the batch limits and the tokens available now. */
export interface BatchLimits {
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly messageTokens: number;
  readonly byteTokens: number;
}

export function createPendingSend(
  record: ProducerRecord,
  resolve: (metadata: RecordMetadata[]) => void,
  reject: (error: unknown) => void,
): PendingSend {
  let markDone!: () => void;
  const done = new Promise<void>((r) => {
    markDone = r;
  });
  return {
    topic: record.topic,
    record,
    batchKey: `${String(record.acks)}|${String(record.timeout)}|${String(record.compression)}`,
    queued: 0,
    inFlight: 0,
    handedOver: false,
    results: [],
    settled: false,
    resolve,
    reject,
    done,
    markDone,
    detach: undefined,
  };
}

/**
 * The messages accepted and not yet handed to KafkaJS, in arrival order, and
 * their totals. Batches are cut from the head as late as possible, so they
 * grow with the backlog the way the Java producer's `linger.ms` /
 * `batch.size` batches do.
 */
export class SendBuffer {
  #queue: QueuedMessage[] = [];
  #messages = 0;
  #bytes = 0;

  get messages(): number {
    return this.#messages;
  }

  get bytes(): number {
    return this.#bytes;
  }

  /** The oldest message waiting. */
  get head(): QueuedMessage | undefined {
    return this.#queue[0];
  }

  add(owner: PendingSend, entries: readonly QueuedMessage[], now: number): void {
    for (const entry of entries) {
      entry.enqueuedAt = now;
      this.#queue.push(entry);
      this.#bytes += entry.bytes;
    }
    this.#messages += entries.length;
    owner.queued += entries.length;
  }

  /**
   * Takes the next batch: the head message, then following messages of the
   * same topic and batch key while `limits` allow. Messages of other topics
   * are skipped over (they keep their place); a message of the same topic
   * with other settings ends the batch, so the order within a topic is kept.
   * The head always goes, whatever the tokens: the buckets go into debt for
   * it, so a message larger than a second's worth still goes, alone.
   */
  take(limits: BatchLimits): Batch | undefined {
    const queue = this.#queue;
    const head = queue[0];
    if (head === undefined) return undefined;
    const taken: QueuedMessage[] = [];
    const skipped: QueuedMessage[] = [];
    let bytes = 0;
    let index = 0;
    for (; index < queue.length; index += 1) {
      const entry = queue[index];
      if (entry === undefined) break;
      if (entry.owner.topic !== head.owner.topic) {
        skipped.push(entry);
        continue;
      }
      if (entry.owner.batchKey !== head.owner.batchKey) break;
      const count = taken.length + 1;
      const size = bytes + entry.bytes;
      if (
        taken.length > 0 &&
        (count > limits.maxMessages ||
          count > limits.messageTokens ||
          size > limits.maxBytes ||
          size > limits.byteTokens)
      ) {
        break;
      }
      taken.push(entry);
      bytes = size;
    }
    if (index >= queue.length && skipped.length === 0) this.#queue = [];
    else
      this.#queue = skipped.length === 0 ? queue.slice(index) : skipped.concat(queue.slice(index));
    this.#messages -= taken.length;
    this.#bytes -= bytes;

    const owners = new Set<PendingSend>();
    const messages: Message[] = new Array<Message>(taken.length);
    for (let i = 0; i < taken.length; i += 1) {
      const entry = taken[i] as QueuedMessage;
      entry.owner.queued -= 1;
      owners.add(entry.owner);
      messages[i] = entry.message;
    }
    for (const owner of owners) {
      owner.inFlight += 1;
      owner.handedOver = true;
    }
    const { acks, timeout, compression } = head.owner.record;
    const record: ProducerRecord = { topic: head.owner.topic, messages };
    if (acks !== undefined) record.acks = acks;
    if (timeout !== undefined) record.timeout = timeout;
    if (compression !== undefined) record.compression = compression;
    return { topic: head.owner.topic, record, owners, messages: taken.length, bytes };
  }

  /** Removes every message of `owner` still waiting; returns how many. */
  remove(owner: PendingSend): number {
    if (owner.queued === 0) return 0;
    const kept: QueuedMessage[] = [];
    let removed = 0;
    for (const entry of this.#queue) {
      if (entry.owner === owner) {
        removed += 1;
        this.#messages -= 1;
        this.#bytes -= entry.bytes;
      } else {
        kept.push(entry);
      }
    }
    this.#queue = kept;
    owner.queued = 0;
    return removed;
  }

  clear(): void {
    for (const entry of this.#queue) entry.owner.queued = 0;
    this.#queue = [];
    this.#messages = 0;
    this.#bytes = 0;
  }
}
