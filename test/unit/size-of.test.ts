import { describe, expect, it } from 'vitest';
import { sizeOf } from '../../src/consumer/dispatch/delivery.js';

const message = (fields: Partial<Parameters<typeof sizeOf>[0]>): Parameters<typeof sizeOf>[0] => ({
  offset: '0',
  key: null,
  value: null,
  headers: {},
  timestamp: '0',
  ...fields,
});

describe('sizeOf (what the in-flight byte bound counts)', () => {
  it('counts key and value bytes; null ones weigh nothing', () => {
    expect(sizeOf(message({}))).toBe(0);
    expect(sizeOf(message({ key: Buffer.from('abc'), value: Buffer.alloc(100) }))).toBe(103);
  });

  it('counts header names and values, strings in UTF-8 bytes, arrays value by value', () => {
    expect(
      sizeOf(
        message({
          headers: {
            a: Buffer.from('12345'),
            bc: 'é', // 2 bytes in UTF-8
            list: [Buffer.from('xy'), 'z'],
            none: undefined,
          },
        }),
      ),
    ).toBe(1 + 5 + 2 + 2 + 4 + 2 + 1 + 4);
  });

  it('works without headers at all', () => {
    expect(sizeOf({ offset: '0', key: null, value: Buffer.alloc(7), timestamp: '0' })).toBe(7);
  });
});
