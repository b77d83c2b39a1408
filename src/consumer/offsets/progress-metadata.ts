/**
 * The offset-commit metadata that records which offsets above the committed
 * position are already done. Out-of-order completion (the `key` and
 * `unordered` modes) finishes messages past the lowest unfinished one; the
 * committed position cannot express them, so without this a crash or a
 * rebalance hands them to the next owner to run again.
 *
 * Layout, ASCII only: `kbp1/<position>/<runs>`.
 * - `kbp1` names the format and its version; anything else is not ours.
 * - `<position>` is the committed offset the record was written with. A
 *   record whose position differs from the committed offset is stale: the
 *   offset was moved (a reset, another client), and the record is ignored.
 * - `<runs>` are base-36 lengths separated by `.`, alternating between
 *   offsets not done and offsets done, starting at `<position>` with a run
 *   of not done (the position itself is never done). The last run is a
 *   done run; whatever lies past it is not done.
 *
 * A record that would not fit the broker's limit (`offset.metadata.max.bytes`,
 * 4,096 by default) keeps its leading runs and drops the rest: the dropped
 * offsets are then simply not marked done and run again, which is what a
 * plain position would do for all of them.
 */

const MAGIC = 'kbp1';
const SEPARATOR = '/';
const RUN_SEPARATOR = '.';
/** Under the broker's default `offset.metadata.max.bytes` (4,096). */
export const MAX_METADATA_LENGTH = 4000;

/** Offsets marked done, as half-open ranges `[from, to)` in ascending order. */
export type DoneRanges = readonly (readonly [from: number, to: number])[];

/**
 * Encodes the done offsets above `position`. `offsets` holds the tracked
 * offsets in ascending order (those before index `from`, or below the
 * position, are passed over); `done` tells whether one is done. Offsets missing between them (compaction,
 * transaction markers) join the run before them; they are never fetched, so
 * their mark does not matter. Returns undefined when nothing above the
 * position is done: the plain position says it all.
 */
export function encodeProgress(
  position: number,
  offsets: readonly number[],
  from: number,
  done: (offset: number) => boolean,
  maxLength = MAX_METADATA_LENGTH,
): string | undefined {
  const head = `${MAGIC}${SEPARATOR}${position}${SEPARATOR}`;
  let text = head;
  let runStart = position;
  let runDone = false;
  let lastDone = -1;
  /** The text up to and including the last complete done run. */
  let complete: string | undefined;
  for (let i = from; i < offsets.length; i += 1) {
    const offset = offsets[i]!;
    if (offset < position) continue;
    const isDone = done(offset);
    if (isDone) lastDone = offset;
    if (isDone === runDone) continue;
    // A run of the other kind starts here, so the one before ends here.
    const piece = (text === head ? '' : RUN_SEPARATOR) + (offset - runStart).toString(36);
    if (text.length + piece.length > maxLength) {
      // Out of room: keep the runs so far, and close a done run under way below.
      break;
    }
    text += piece;
    if (runDone) complete = text;
    runStart = offset;
    runDone = isDone;
  }
  if (runDone) {
    const piece = RUN_SEPARATOR + (lastDone + 1 - runStart).toString(36);
    if (text.length + piece.length <= maxLength) complete = text + piece;
  }
  return complete;
}

export type DecodedProgress =
  | { readonly kind: 'ranges'; readonly done: DoneRanges }
  /** No metadata, or metadata without anything marked done. */
  | { readonly kind: 'none' }
  /** Not ours, or ours but unusable; `reason` says why (for the log). */
  | { readonly kind: 'ignored'; readonly reason: string };

/**
 * Decodes the metadata committed with `committedOffset`. Never throws:
 * metadata of another tool, of another version, for another position, or
 * damaged is ignored with a reason, and the partition starts from the
 * plain position.
 */
export function decodeProgress(
  metadata: string | null | undefined,
  committedOffset: number,
): DecodedProgress {
  if (metadata === null || metadata === undefined || metadata === '') return { kind: 'none' };
  const parts = metadata.split(SEPARATOR);
  if (!parts[0]?.startsWith('kbp')) return { kind: 'ignored', reason: 'written by another client' };
  if (parts[0] !== MAGIC) return { kind: 'ignored', reason: `unknown format ${parts[0]}` };
  if (parts.length !== 3) return { kind: 'ignored', reason: 'malformed' };
  const position = Number(parts[1]);
  if (!/^\d+$/.test(parts[1]!) || !Number.isSafeInteger(position)) {
    return { kind: 'ignored', reason: 'malformed position' };
  }
  if (position !== committedOffset) {
    return {
      kind: 'ignored',
      reason: `written at offset ${position}, but the committed offset is ${committedOffset}`,
    };
  }
  if (parts[2] === '') return { kind: 'none' };
  const done: [number, number][] = [];
  let at = position;
  let isDone = false;
  const runs = parts[2]!.split(RUN_SEPARATOR);
  for (const run of runs) {
    const length = /^[0-9a-z]+$/.test(run) ? parseInt(run, 36) : Number.NaN;
    if (!Number.isSafeInteger(length) || length <= 0 || !Number.isSafeInteger(at + length)) {
      return { kind: 'ignored', reason: 'malformed run' };
    }
    if (isDone) done.push([at, at + length]);
    at += length;
    isDone = !isDone;
  }
  // Runs alternate from "not done", so a well-formed record has an even count.
  if (runs.length % 2 !== 0)
    return { kind: 'ignored', reason: 'malformed: ends on a run not done' };
  return done.length === 0 ? { kind: 'none' } : { kind: 'ranges', done };
}

/** Answers "was this offset marked done?" for ascending lookups, in O(1) amortized. */
export class DoneCursor {
  readonly #ranges: DoneRanges;
  #index = 0;

  constructor(ranges: DoneRanges) {
    this.#ranges = ranges;
  }

  /** True once every range lies behind the offsets asked about. */
  get exhausted(): boolean {
    return this.#index >= this.#ranges.length;
  }

  /** Offsets must be asked in ascending order. */
  has(offset: number): boolean {
    const ranges = this.#ranges;
    while (this.#index < ranges.length && ranges[this.#index]![1] <= offset) this.#index += 1;
    const range = ranges[this.#index];
    return range !== undefined && offset >= range[0];
  }
}
