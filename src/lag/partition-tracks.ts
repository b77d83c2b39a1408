import { byTopicPartition, tpKey, type TopicPartition } from '../shared/topic-partition.js';
import type { Poll } from './admin-poller.js';
import { analyzePartition } from './analysis.js';
import { AppendHistory } from './append-history.js';
import type { LagStatus } from './lag-status.js';
import type { ResolvedLagMonitorOptions } from './options.js';
import { CommitTrail } from './rules.js';
import { lagOf, positionOf, type LagWindow } from './samples.js';
import type { LagRuleEvent, LagStatusEvent, PartitionLag } from './snapshot.js';
import { estimateTimeLag } from './time-lag.js';
import { FIRST_VERDICT, step, type Verdict } from './verdict.js';

/** What the monitor remembers of one partition beyond the sample window. */
interface Track {
  readonly trail: CommitTrail;
  readonly history: AppendHistory;
  verdict: Verdict;
}

/** One round's partitions, and the status and rule changes they brought. */
export interface PartitionRound {
  readonly partitions: PartitionLag[];
  readonly statusChanges: LagStatusEvent[];
  readonly ruleChanges: LagRuleEvent[];
}

/**
 * The lag monitor's memory of each partition: its samples (in the shared
 * window), its commit trail for Burrow's rules, its append history for the
 * time lag, and its verdict with hysteresis. Each round adds a sample per
 * partition and evaluates it.
 */
export class PartitionTracks {
  readonly #window: LagWindow;
  readonly #tracks = new Map<string, Track>();

  constructor(window: LagWindow) {
    this.#window = window;
  }

  /** The partition's status by its last verdict; `ok` before its first. */
  status(partition: TopicPartition): LagStatus {
    return this.#tracks.get(tpKey(partition.topic, partition.partition))?.verdict.status ?? 'ok';
  }

  /** Forgets the partitions `keep` refuses (topics no longer watched). */
  retain(keep: (key: string) => boolean): void {
    this.#window.retain(keep);
    for (const key of [...this.#tracks.keys()]) if (!keep(key)) this.#tracks.delete(key);
  }

  /** Adds this round's samples and evaluates every polled partition, in topic and partition order. */
  evaluate(polled: Poll, o: ResolvedLagMonitorOptions): PartitionRound {
    const statusChanges: LagStatusEvent[] = [];
    const ruleChanges: LagRuleEvent[] = [];
    const partitions = [...polled.partitions]
      .sort(byTopicPartition)
      .map(({ topic, partition, sample }): PartitionLag => {
        const key = tpKey(topic, partition);
        let track = this.#tracks.get(key);
        if (track === undefined) {
          track = {
            trail: new CommitTrail(),
            history: new AppendHistory(o.timeLagHistorySize),
            verdict: FIRST_VERDICT,
          };
          this.#tracks.set(key, track);
        }
        if (this.#window.add(key, sample)) {
          track.trail.observe(sample);
          track.history.observe(sample.at, sample.endOffset, sample.startOffset);
        }
        // A round slower than the whole window leaves only this round's sample.
        const window = this.#window.samples(key);
        const samples = window.length > 0 ? window : [sample];
        const owned = polled.owned === null ? null : polled.owned.has(key);
        const rules = track.trail.evaluate(samples, owned, o);
        const timeLag = estimateTimeLag(
          track.history,
          positionOf(sample),
          lagOf(sample),
          sample.at,
        );
        const analysis = analyzePartition(samples, timeLag, rules);
        const stepped = step(
          o.groupId,
          { topic, partition },
          track.verdict,
          analysis,
          o.thresholds,
        );
        track.verdict = stepped.next;
        if (stepped.status) statusChanges.push(stepped.status);
        if (stepped.rule) ruleChanges.push(stepped.rule);
        return { topic, partition, ...analysis, status: stepped.next.status, owned };
      });
    return { partitions, statusChanges, ruleChanges };
  }
}
