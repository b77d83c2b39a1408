import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  decodeProgress,
  DoneCursor,
  encodeProgress,
  MAX_METADATA_LENGTH,
} from '../../src/consumer/offsets/progress-metadata.js';

/** The offsets the encoded record marks done, among `offsets`. */
function marked(metadata: string | undefined, position: number, offsets: readonly number[]) {
  const decoded = decodeProgress(metadata, position);
  if (decoded.kind === 'ignored') throw new Error(decoded.reason);
  const cursor = new DoneCursor(decoded.kind === 'ranges' ? decoded.done : []);
  return offsets.filter((o) => cursor.has(o));
}

describe('progress metadata', () => {
  it('encodes alternating runs from the position, in base 36', () => {
    const offsets = [100, 101, 102, 103, 104, 140];
    const done = new Set([101, 102, 140]);
    const metadata = encodeProgress(100, offsets, 0, (o) => done.has(o));
    // 100 not done; 101..102 done; 103..139 not done (gaps join the run before); 140 done.
    expect(metadata).toBe(`kbp1/100/1.2.${(140 - 103).toString(36)}.1`);
    expect(marked(metadata, 100, offsets)).toEqual([101, 102, 140]);
  });

  it('is undefined when nothing above the position is done', () => {
    expect(encodeProgress(5, [5, 6, 7], 0, () => false)).toBeUndefined();
    expect(encodeProgress(5, [], 0, () => true)).toBeUndefined();
  });

  it('marks exactly the done offsets, whatever the gaps and the pattern', () => {
    fc.assert(
      fc.property(
        fc.nat(1e12),
        fc.array(fc.record({ gap: fc.nat(3), done: fc.boolean() }), { maxLength: 400 }),
        (position, entries) => {
          const offsets: number[] = [position];
          const done = new Set<number>();
          let offset = position;
          for (const entry of entries) {
            offset += 1 + entry.gap;
            offsets.push(offset);
            if (entry.done) done.add(offset);
          }
          const metadata = encodeProgress(position, offsets, 0, (o) => done.has(o));
          expect(marked(metadata, position, offsets)).toEqual(offsets.filter((o) => done.has(o)));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the leading runs that fit the limit and marks only done offsets', () => {
    fc.assert(
      fc.property(fc.integer({ min: 20, max: 200 }), fc.nat(1e6), (limit, position) => {
        // Every other offset done: the worst case for the length.
        const offsets = Array.from({ length: 5000 }, (_, i) => position + i);
        const done = (o: number) => (o - position) % 2 === 1;
        const metadata = encodeProgress(position, offsets, 0, done, limit);
        expect(metadata === undefined || metadata.length <= limit).toBe(true);
        const got = marked(metadata, position, offsets);
        expect(got.every(done)).toBe(true);
        // A prefix: the first done offsets, none skipped.
        expect(got).toEqual(offsets.filter(done).slice(0, got.length));
      }),
    );
    const offsets = Array.from({ length: 10_000 }, (_, i) => i);
    const metadata = encodeProgress(0, offsets, 0, (o) => o % 2 === 1);
    expect(metadata!.length).toBeLessThanOrEqual(MAX_METADATA_LENGTH);
    // Worst case, every other offset done: about a thousand still fit.
    expect(marked(metadata, 0, offsets).length).toBeGreaterThan(900);
  });

  it.each([
    [null, 'none'],
    ['', 'none'],
    ['kbp1/3/', 'none'],
    ['something else', 'ignored'],
    ['kbp2/3/1.1', 'ignored'],
    ['kbp1/4/1.1', 'ignored'],
    ['kbp1/3/1', 'ignored'],
    ['kbp1/3/1.0', 'ignored'],
    ['kbp1/3/1.-1', 'ignored'],
    ['kbp1/x/1.1', 'ignored'],
    ['kbp1/3/1.1/9', 'ignored'],
    ['kbp1/3/zzzzzzzzzzzzzz.1', 'ignored'],
    ['kbp1/3/1.1', 'ranges'],
  ])('decodes %j for committed offset 3 as %s, never throwing', (metadata, kind) => {
    expect(decodeProgress(metadata, 3).kind).toBe(kind);
  });
});
