import { BackpressureError, toError } from '../../errors.js';
import type { Clock } from '../../shared/clock.js';
import type { Logger } from '../../shared/logger.js';
import { commitChannel } from '../../shared/tracing.js';
import type { PartitionState } from '../admission/partitions.js';
import type { CommitEvent } from '../events.js';
import type { CommitOffset, ConsumerClient } from '../kafka/port.js';
import type { Progress } from './tracker.js';

/** Every how many periodic commits the unchanged positions are committed again too. */
const REASSERT_EVERY = 6;
/**
 * Commits that completions ask for start at least this far apart: with one
 * commit in flight at a time, a member sends at most 20 OffsetCommit
 * requests a second on top of the periodic one, however fast it consumes.
 */
export const MIN_COMMIT_GAP_MS = 50;

export interface CommitCadence {
  /** The periodic commit's interval. */
  readonly commitIntervalMs: number;
  /** Completions since the last commit that ask for the next one. */
  readonly commitEveryMessages: number;
  readonly clock: Clock;
}

export type CommitScope = 'changed' | 'all';

export interface CommitterHooks {
  /** The partitions owned now. */
  partitions(): Iterable<PartitionState>;
  /** False before start and after close: nothing to commit to. */
  live(): boolean;
  /** The consumer group, for tracing. */
  groupId(): string;
  committed(event: CommitEvent): void;
  failed(error: BackpressureError): void;
}

/**
 * Commits each owned partition's position: the lowest offset not done yet
 * (every offset below it is handled, dead-lettered or shed), never a
 * position KafkaJS resolved. Commits run one at a time, in order, so a slow
 * commit is never overtaken by an older position.
 *
 * `changed` commits the partitions whose position moved since their last
 * confirmed commit; `all` commits every owned partition's position again.
 * The second heals a committed offset someone else moved back: KafkaJS
 * retries a commit refused during a rebalance under the next generation,
 * so a former owner's late retry can land after the new owner's last
 * commit, and a partition with no further progress would keep the stale
 * offset until its next owner re-processed from it. Rebalances, close and
 * every few periodic commits re-assert everything.
 */
export class Committer {
  readonly #client: ConsumerClient;
  readonly #logger: Logger;
  readonly #hooks: CommitterHooks;
  readonly #cadence: CommitCadence;
  #chain: Promise<void> = Promise.resolve();
  #ticks = 0;
  /** Completions since the last commit started. */
  #doneSince = 0;
  /** When the last commit started (cadence clock). */
  #lastStart = Number.NEGATIVE_INFINITY;
  /** The commit that completions asked for, waiting for its gap. */
  #soon: NodeJS.Timeout | undefined;
  /** Commits queued or running. */
  #queued = 0;
  /** A partition's first completion asked for a commit while one was queued. */
  #promptPending = false;
  #stopped = false;

  constructor(
    client: ConsumerClient,
    logger: Logger,
    cadence: CommitCadence,
    hooks: CommitterHooks,
  ) {
    this.#client = client;
    this.#logger = logger;
    this.#cadence = cadence;
    this.#hooks = hooks;
  }

  /**
   * A message of `state` is done. The first completion of a partition that
   * has not committed since it was assigned asks for a commit at once (a
   * member that dies seconds after joining then loses little), and so does
   * every `commitEveryMessages`-th completion: the work at risk of a crash
   * stays bounded by a count as well as by time.
   */
  done(state: PartitionState): void {
    this.#doneSince += 1;
    if (this.#soon !== undefined || this.#stopped) return;
    const first = state.tracker.committedOffset === undefined;
    if (first) this.#promptPending = true;
    if (first || this.#doneSince >= this.#cadence.commitEveryMessages) this.#askSoon();
  }

  /**
   * Schedules the commit that completions asked for, at least
   * MIN_COMMIT_GAP_MS after the last one started. While a commit is queued
   * or running, nothing is scheduled: the one that ends asks again if
   * completions piled up meanwhile, so a slow broker never builds a queue
   * of commits.
   */
  #askSoon(): void {
    if (this.#soon !== undefined || this.#stopped || this.#queued > 0) return;
    const wait = Math.max(0, this.#lastStart + MIN_COMMIT_GAP_MS - this.#cadence.clock.now());
    this.#soon = setTimeout(() => {
      this.#soon = undefined;
      void this.commit('changed');
    }, wait);
    this.#soon.unref();
  }

  /** No further commit is asked for by completions (on close). */
  stop(): void {
    this.#stopped = true;
    if (this.#soon !== undefined) clearTimeout(this.#soon);
    this.#soon = undefined;
  }

  /**
   * The periodic commit: changed positions, and all of them every few
   * ticks. Skipped while another commit is queued or running (a slow or
   * unreachable broker): the queue stays at one, and that commit carries
   * the latest positions when it runs.
   */
  tick(): Promise<void> {
    if (this.#queued > 0) return this.#chain;
    this.#ticks += 1;
    return this.commit(this.#ticks % REASSERT_EVERY === 0 ? 'all' : 'changed');
  }

  /** Queues a commit behind the one running. */
  commit(scope: CommitScope = 'changed'): Promise<void> {
    this.#queued += 1;
    // now() reports its own failures; a rejection here (a bug) must not
    // stop every later commit, which a plain then() chain would.
    this.#chain = this.#chain
      .catch(() => undefined)
      .then(() => this.now(scope))
      .finally(() => {
        this.#queued -= 1;
        if (this.#promptPending || this.#doneSince >= this.#cadence.commitEveryMessages) {
          this.#askSoon();
        }
      });
    return this.#chain;
  }

  /**
   * Commits at once, outside the queue. For a rebalance the client noticed
   * itself: the OffsetCommit then reaches the coordinator before the
   * JoinGroup (which first waits for a FindCoordinator round trip) and
   * still carries the old generation.
   */
  async now(scope: CommitScope): Promise<void> {
    if (!this.#hooks.live()) return;
    this.#lastStart = this.#cadence.clock.now();
    this.#doneSince = 0;
    this.#promptPending = false;
    const offsets: CommitOffset[] = [];
    const states = new Map<string, [PartitionState, Progress]>();
    for (const state of this.#hooks.partitions()) {
      if (state.revoked) continue;
      const progress = state.tracker.progress(scope === 'changed');
      if (progress === undefined) continue;
      offsets.push({
        topic: state.topic,
        partition: state.partition,
        offset: String(progress.position),
        metadata: progress.metadata,
      });
      states.set(state.key, [state, progress]);
    }
    if (offsets.length === 0) return;
    try {
      const accepted = await (commitChannel.hasSubscribers
        ? commitChannel.tracePromise(() => this.#client.commit(offsets), {
            groupId: this.#hooks.groupId(),
            offsets,
          })
        : this.#client.commit(offsets));
      for (const offset of accepted) {
        const entry = states.get(`${offset.topic}|${offset.partition}`);
        if (entry !== undefined) entry[0].tracker.markCommitted(entry[1]);
      }
      if (accepted.length < offsets.length) {
        // Not an error of the broker's: the client was not running. The
        // positions stay uncommitted and go out with the next commit.
        this.#logger.warn(
          { offsets, accepted: accepted.length },
          'kafkajs-backpressure: KafkaJS skipped an offset commit (consumer not running)',
        );
      }
      if (accepted.length > 0) this.#hooks.committed({ offsets: accepted });
    } catch (error) {
      this.#hooks.failed(
        new BackpressureError('ERR_COMMIT', `Offset commit failed: ${toError(error).message}`, {
          cause: error,
          retriable: true,
        }),
      );
    }
  }
}
