// The fault suite's bookkeeping: every message produced must end up handled
// (at least once) or dead-lettered, and every delivery beyond the first is
// a duplicate, counted so a case can bound it.
//
// Messages are identified by `partition:offset` (see `offsetId`) wherever
// possible: that identity exists for every record the broker stored, even
// one with a null key and value, and a record written twice by a retried
// send is two records, each of which must be consumed.
//
// A consumer in a child process (which may be SIGKILLed at any moment)
// writes its entries with `LedgerFile`, one synchronous append per entry:
// once `appendFileSync` returns, the line is in the kernel's page cache and
// survives the process. The test process reads the file with `Ledger.ingest`.

import { appendFileSync, closeSync, openSync, readSync, statSync } from 'node:fs';

export type DeadLetterReason = string;

/** `partition:offset`, the identity of a record within one topic. */
export function offsetId(partition: number, offset: number | string): string {
  return `${partition}:${offset}`;
}

export interface LedgerCounts {
  /** Records expected (produced and acknowledged). */
  readonly produced: number;
  /** Distinct expected records handled at least once. */
  readonly handled: number;
  /** Distinct expected records dead-lettered (and not also handled). */
  readonly deadLettered: number;
  /** Expected records neither handled nor dead-lettered. */
  readonly missing: number;
  /** Deliveries (handled or dead-lettered) beyond the first of each record. */
  readonly duplicates: number;
  /** Handled or dead-lettered ids that were never expected. */
  readonly unexpected: number;
}

export interface CompleteOptions {
  /** Most duplicates allowed; the assertion message shows the bound and how it was derived. */
  readonly maxDuplicates?: number;
  /** Ids that may be dead-lettered; any other dead letter fails the check. Default: none may be. */
  readonly mayDeadLetter?: (id: string, reason: DeadLetterReason) => boolean;
  /** Ids that must be dead-lettered (and not handled). */
  readonly mustDeadLetter?: Iterable<string>;
}

/** Counts deliveries per record and checks that nothing was lost. */
export class Ledger {
  readonly name: string;
  readonly #expected = new Set<string>();
  readonly #handled = new Map<string, number>();
  readonly #deadLettered = new Map<string, { count: number; reasons: DeadLetterReason[] }>();
  readonly #files = new Map<string, { position: number; partial: string }>();
  readonly #notes = new Map<string, string | number>();

  constructor(name: string) {
    this.name = name;
  }

  /** Registers a produced (acknowledged) record that must be accounted for. */
  expect(id: string): void {
    this.#expected.add(id);
  }

  /** Registers every offset below each partition's end offset (from `endOffsets`) at or above `from`. */
  expectOffsets(ends: ReadonlyMap<number, number>, from: ReadonlyMap<number, number> = new Map()) {
    for (const [partition, end] of ends) {
      for (let offset = from.get(partition) ?? 0; offset < end; offset += 1)
        this.expect(offsetId(partition, offset));
    }
  }

  /** Records a handled delivery (the handler resolved, or its side effect was made). */
  handled(id: string): void {
    this.#handled.set(id, (this.#handled.get(id) ?? 0) + 1);
  }

  /** Records a dead letter, with the reason the DLQ headers give. */
  deadLettered(id: string, reason: DeadLetterReason): void {
    const entry = this.#deadLettered.get(id);
    if (entry) {
      entry.count += 1;
      entry.reasons.push(reason);
    } else {
      this.#deadLettered.set(id, { count: 1, reasons: [reason] });
    }
  }

  /** Times this id was handled. */
  handledCount(id: string): number {
    return this.#handled.get(id) ?? 0;
  }

  /** The reasons this id was dead-lettered with, in order (empty when it never was). */
  deadLetterReasons(id: string): readonly DeadLetterReason[] {
    return this.#deadLettered.get(id)?.reasons ?? [];
  }

  get expectedCount(): number {
    return this.#expected.size;
  }

  /** Distinct ids handled or dead-lettered so far (expected or not). */
  get accountedCount(): number {
    let n = this.#handled.size;
    for (const id of this.#deadLettered.keys()) if (!this.#handled.has(id)) n += 1;
    return n;
  }

  /** Expected ids neither handled nor dead-lettered. */
  missing(): string[] {
    const out: string[] = [];
    for (const id of this.#expected) {
      if (!this.#handled.has(id) && !this.#deadLettered.has(id)) out.push(id);
    }
    return out;
  }

  /** True once every expected record was handled or dead-lettered. */
  isComplete(): boolean {
    for (const id of this.#expected) {
      if (!this.#handled.has(id) && !this.#deadLettered.has(id)) return false;
    }
    return true;
  }

  counts(): LedgerCounts {
    let duplicates = 0;
    let unexpected = 0;
    let deadLettered = 0;
    let handled = 0;
    const ids = new Set([...this.#handled.keys(), ...this.#deadLettered.keys()]);
    for (const id of ids) {
      const deliveries = (this.#handled.get(id) ?? 0) + (this.#deadLettered.get(id)?.count ?? 0);
      duplicates += deliveries - 1;
      if (!this.#expected.has(id)) unexpected += 1;
      else if (this.#handled.has(id)) handled += 1;
      else deadLettered += 1;
    }
    return {
      produced: this.#expected.size,
      handled,
      deadLettered,
      missing: this.missing().length,
      duplicates,
      unexpected,
    };
  }

  /** Adds a figure to the summary line (timings, kills, rebalances, ...). */
  note(name: string, value: string | number): void {
    this.#notes.set(name, value);
  }

  /**
   * Throws unless every expected record was accounted for, nothing
   * unexpected turned up, dead letters are the allowed ones, and the
   * duplicates are within the bound. The message lists a sample of what
   * went wrong, so a failure explains itself.
   */
  assertComplete(options: CompleteOptions = {}): LedgerCounts {
    const counts = this.counts();
    const problems: string[] = [];
    const missing = this.missing();
    if (missing.length > 0) problems.push(`${missing.length} missing, e.g. ${sample(missing)}`);
    if (counts.unexpected > 0) {
      const ids = [...this.#handled.keys(), ...this.#deadLettered.keys()].filter(
        (id) => !this.#expected.has(id),
      );
      problems.push(`${counts.unexpected} never produced, e.g. ${sample(ids)}`);
    }
    const mayDeadLetter = options.mayDeadLetter ?? (() => false);
    const wrongLetters: string[] = [];
    for (const [id, { reasons }] of this.#deadLettered) {
      for (const reason of reasons)
        if (!mayDeadLetter(id, reason)) wrongLetters.push(`${id}(${reason})`);
    }
    if (wrongLetters.length > 0)
      problems.push(
        `${wrongLetters.length} dead letters not allowed, e.g. ${sample(wrongLetters)}`,
      );
    if (options.mustDeadLetter) {
      const notLettered = [...options.mustDeadLetter].filter((id) => !this.#deadLettered.has(id));
      if (notLettered.length > 0)
        problems.push(`${notLettered.length} not dead-lettered, e.g. ${sample(notLettered)}`);
    }
    if (options.maxDuplicates !== undefined && counts.duplicates > options.maxDuplicates) {
      problems.push(`${counts.duplicates} duplicates, bound ${options.maxDuplicates}`);
    }
    if (problems.length > 0) {
      throw new Error(`[ledger ${this.name}] ${problems.join('; ')}\n  ${this.summary()}`);
    }
    return counts;
  }

  /** One line: `[fault:name] produced=... handled=... dlq=... missing=... duplicates=... <notes>`. */
  summary(): string {
    const c = this.counts();
    const notes = [...this.#notes].map(([k, v]) => `${k}=${v}`).join(' ');
    return (
      `[fault:${this.name}] produced=${c.produced} handled=${c.handled} dlq=${c.deadLettered} ` +
      `missing=${c.missing} duplicates=${c.duplicates} unexpected=${c.unexpected}` +
      (notes ? ` ${notes}` : '')
    );
  }

  /** Prints the summary line (vitest shows it with the test's output). */
  print(): void {
    console.info(this.summary());
  }

  /**
   * Reads what a `LedgerFile` wrote since the last call (a partial last line
   * is kept for the next call) and returns the non-ledger lines (`c ...`
   * and anything else a child recorded) for the caller to interpret.
   */
  ingest(path: string): string[] {
    let cursor = this.#files.get(path);
    if (!cursor) {
      cursor = { position: 0, partial: '' };
      this.#files.set(path, cursor);
    }
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return [];
    }
    if (size <= cursor.position) return [];
    const fd = openSync(path, 'r');
    const buffer = Buffer.alloc(size - cursor.position);
    try {
      readSync(fd, buffer, 0, buffer.length, cursor.position);
    } finally {
      closeSync(fd);
    }
    cursor.position = size;
    const text = cursor.partial + buffer.toString('utf8');
    const lines = text.split('\n');
    cursor.partial = lines.pop() ?? '';
    const other: string[] = [];
    for (const line of lines) {
      if (line.startsWith('h ')) this.handled(line.slice(2));
      else if (line.startsWith('d ')) {
        const [id, ...reason] = line.slice(2).split(' ');
        this.deadLettered(id!, reason.join(' '));
      } else if (line !== '') other.push(line);
    }
    return other;
  }
}

/**
 * The writing side for a consumer in another process: each entry is one
 * synchronous append, so it is on disk (in the page cache) before the
 * handler resolves and the offset can be committed.
 */
export class LedgerFile {
  readonly path: string;

  constructor(path: string) {
    this.path = path;
  }

  handled(id: string): void {
    appendFileSync(this.path, `h ${id}\n`);
  }

  deadLettered(id: string, reason: string): void {
    appendFileSync(this.path, `d ${id} ${reason}\n`);
  }

  /** Any other record (`c` for commits, ...); returned by `Ledger.ingest`. */
  line(text: string): void {
    appendFileSync(this.path, `${text}\n`);
  }
}

function sample(items: readonly string[], n = 8): string {
  const head = items.slice(0, n).join(', ');
  return items.length > n ? `${head}, ...` : head;
}
