import type { TopicPartition } from '../shared/topic-partition.js';
import type { AdminCall } from './admin-poller.js';
import type { GroupAnalysis, PartitionAnalysis } from './analysis.js';
import type { LagStatus } from './lag-status.js';
import type { LagRecommendation } from './recommend.js';
import type { LagRules } from './rules.js';
import type { LagSample } from './samples.js';
import type { TimeLag } from './time-lag.js';

/** The data a `LagMonitor` hands out, and the payloads of its events. */

/** One partition in a {@link LagSnapshot}. */
export interface PartitionLag extends TopicPartition, PartitionAnalysis {
  readonly status: LagStatus;
  /** Whether a live member of the group owns the partition; `null` when unknown. */
  readonly owned: boolean | null;
}

/** The group in a {@link LagSnapshot}: totals over its partitions, and its own status. */
export interface GroupLag extends GroupAnalysis {
  readonly status: LagStatus;
}

/** The result of one sampling round. */
export interface LagSnapshot {
  readonly groupId: string;
  /** When the end offsets were read, on the monitor's clock (ms). */
  readonly at: number;
  /** Active members from `describeGroups`; `null` until one call succeeded. */
  readonly members: number | null;
  readonly total: GroupLag;
  /** Sorted by topic, then partition. */
  readonly partitions: readonly PartitionLag[];
  readonly recommendation: LagRecommendation;
}

/** A partition's samples in the window, with each sample's lag. */
export interface PartitionHistory extends TopicPartition {
  readonly samples: readonly (LagSample & { readonly lag: number })[];
}

/** The window, for a `/lag/history` endpoint. Times on the monitor's clock; `now - at` is a sample's age. */
export interface LagHistory {
  readonly groupId: string;
  readonly now: number;
  readonly windowMs: number;
  readonly partitions: readonly PartitionHistory[];
  /** Total lag per round, oldest first. */
  readonly total: readonly { readonly at: number; readonly lag: number }[];
}

export interface LagStatusEvent {
  readonly groupId: string;
  /** The whole group, or one partition. */
  readonly scope: 'group' | TopicPartition;
  readonly from: LagStatus;
  readonly to: LagStatus;
  /** Which measure crossed which mark, e.g. `lag 812 >= criticalLag 800`; the rule in force appended. */
  readonly reason: string;
  readonly lag: number;
  readonly timeLagSeconds: number | null;
  readonly timeLag: TimeLag | null;
  readonly rules: LagRules;
}

export interface LagRuleEvent {
  readonly groupId: string;
  /** The whole group, or one partition. */
  readonly scope: 'group' | TopicPartition;
  /** The rule in force before and after (Burrow's order of precedence); `null`: none. */
  readonly from: keyof LagRules | null;
  readonly to: keyof LagRules | null;
  readonly lag: number;
  readonly rules: LagRules;
}

export interface LagRecommendationEvent {
  readonly groupId: string;
  /** The last recommendation announced; undefined the first time. */
  readonly previous: LagRecommendation | undefined;
  readonly recommendation: LagRecommendation;
}

export interface LagErrorEvent {
  readonly groupId: string;
  readonly error: Error;
  /** The admin call that failed. */
  readonly during: AdminCall;
  /** For `fetchTopicOffsets`: the topic left out of this round. */
  readonly topic?: string;
}

/** Every event a `LagMonitor` emits, by name, with its one payload object. */
export interface LagMonitorEvents {
  /** A sampling round finished; the payload is the new snapshot. */
  'lag.sample': (snapshot: LagSnapshot) => void;
  /** The status of the group or of a partition changed. */
  'lag.status': (event: LagStatusEvent) => void;
  /** The Burrow rule in force for the group or a partition changed. */
  'lag.rule': (event: LagRuleEvent) => void;
  /** `consumersNeeded` or `partitionsNeeded` changed. */
  'lag.recommendation': (event: LagRecommendationEvent) => void;
  /** An admin call failed; sampling goes on. */
  'lag.error': (event: LagErrorEvent) => void;
}

export type LagMonitorState = 'idle' | 'running' | 'stopped';
