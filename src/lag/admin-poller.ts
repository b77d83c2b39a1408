import { toError } from '../errors.js';
import type { Clock } from '../shared/clock.js';
import { tpKey } from '../shared/topic-partition.js';
import type { LagAdmin } from './options.js';
import type { LagSample } from './samples.js';

/**
 * One sampling round through the admin API: the group's committed offsets,
 * the partitions' end offsets, and the group's members with the partitions
 * each one owns. No state; the monitor keeps the history.
 */

export type AdminCall = 'connect' | 'fetchOffsets' | 'fetchTopicOffsets' | 'describeGroups';

export interface PolledPartition {
  readonly topic: string;
  readonly partition: number;
  readonly sample: LagSample;
}

export interface Poll {
  /** The topics watched this round (configured, or discovered from the group's commits). */
  readonly topics: readonly string[];
  /** When the end offsets were read, on the clock. */
  readonly at: number;
  readonly partitions: readonly PolledPartition[];
  /** Members of the group; `null` when describeGroups failed. */
  readonly members: number | null;
  /**
   * `topic:partition` keys owned by a member; `null` when unknown (the call
   * failed, or the group does not use the consumer protocol).
   */
  readonly owned: ReadonlySet<string> | null;
}

export interface PollerOptions {
  readonly groupId: string;
  readonly topics: readonly string[] | undefined;
  readonly clock: Clock;
  /** Called for a failure that does not end the round (one topic, or describeGroups). */
  readonly onError: (error: Error, during: AdminCall, topic?: string) => void;
}

export class AdminCallError extends Error {
  constructor(
    readonly during: AdminCall,
    readonly error: Error,
  ) {
    super(error.message);
  }
}

/** Runs one round. Rejects with an {@link AdminCallError} when connect or fetchOffsets fails. */
export async function poll(admin: LagAdmin, o: PollerOptions, connect: boolean): Promise<Poll> {
  const call = async <T>(during: AdminCall, run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      throw new AdminCallError(during, toError(error));
    }
  };
  if (connect) await call('connect', () => admin.connect());

  // Committed offsets first: the end offsets read after them are never
  // older, so the race between the two reads can only overstate the lag.
  const committed = await call('fetchOffsets', () =>
    admin.fetchOffsets(
      o.topics === undefined
        ? { groupId: o.groupId }
        : { groupId: o.groupId, topics: [...o.topics] },
    ),
  );
  const committedByKey = new Map<string, number | null>();
  for (const { topic, partitions } of committed) {
    for (const { partition, offset } of partitions) {
      const n = Number(offset);
      // KafkaJS reports "no committed offset" as '-1'.
      committedByKey.set(tpKey(topic, partition), Number.isFinite(n) && n >= 0 ? n : null);
    }
  }
  const topics = o.topics ?? [...new Set(committed.map((t) => t.topic))].sort();

  const startedAt = o.clock.now();
  const ends = await Promise.all(
    topics.map(async (topic) => {
      try {
        return { topic, offsets: await admin.fetchTopicOffsets(topic) };
      } catch (error) {
        // One missing topic must not blind the monitor to the others.
        o.onError(toError(error), 'fetchTopicOffsets', topic);
        return { topic, offsets: undefined };
      }
    }),
  );
  // The broker read the end offsets somewhere during the request.
  const at = (startedAt + o.clock.now()) / 2;

  let members: number | null = null;
  let owned: Set<string> | null = null;
  try {
    const { groups } = await admin.describeGroups([o.groupId]);
    const group = groups[0];
    members = group?.members.length ?? 0;
    owned = group === undefined ? new Set() : ownedPartitions(group);
  } catch (error) {
    o.onError(toError(error), 'describeGroups');
  }

  const partitions: PolledPartition[] = [];
  for (const { topic, offsets } of ends) {
    for (const { partition, high, low } of offsets ?? []) {
      const key = tpKey(topic, partition);
      partitions.push({
        topic,
        partition,
        sample: {
          at,
          endOffset: Number(high),
          committedOffset: committedByKey.get(key) ?? null,
          startOffset: Number(low),
        },
      });
    }
  }
  return { topics, at, partitions, members, owned };
}

interface DescribedGroup {
  readonly protocolType: string;
  readonly members: readonly { readonly memberAssignment?: unknown }[];
}

/**
 * The partitions the group's members own, from their assignments. `null`
 * when the group is not a consumer group (its assignments are not in the
 * consumer protocol's format) or one cannot be read.
 */
export function ownedPartitions(group: DescribedGroup): Set<string> | null {
  const keys = new Set<string>();
  if (group.members.length === 0) return keys;
  if (group.protocolType !== 'consumer') return null;
  for (const member of group.members) {
    const assignment = decodeAssignment(member.memberAssignment);
    if (assignment === null) return null;
    for (const [topic, partitions] of assignment) {
      for (const partition of partitions) keys.add(tpKey(topic, partition));
    }
  }
  return keys;
}

/**
 * Kafka's ConsumerProtocolAssignment: int16 version, then an array (int32
 * count) of topic (int16-length string) and partitions (int32 count of
 * int32), then user data. An empty buffer is a member not assigned yet.
 */
export function decodeAssignment(buffer: unknown): [string, number[]][] | null {
  if (!Buffer.isBuffer(buffer)) return null;
  if (buffer.length === 0) return [];
  try {
    let at = 2;
    const topics = buffer.readInt32BE(at);
    at += 4;
    if (topics < 0 || topics > 1_000_000) return null;
    const out: [string, number[]][] = [];
    for (let t = 0; t < topics; t += 1) {
      const length = buffer.readInt16BE(at);
      at += 2;
      if (length < 0 || at + length > buffer.length) return null;
      const topic = buffer.toString('utf8', at, at + length);
      at += length;
      const count = buffer.readInt32BE(at);
      at += 4;
      if (count < 0 || at + 4 * count > buffer.length) return null;
      const partitions: number[] = [];
      for (let p = 0; p < count; p += 1) {
        partitions.push(buffer.readInt32BE(at));
        at += 4;
      }
      out.push([topic, partitions]);
    }
    return out;
  } catch {
    return null;
  }
}
