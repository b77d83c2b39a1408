import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  budgetShare,
  concurrencyShare,
  holdsBudgetShare,
  overBudgetShare,
} from '../../src/consumer/admission/fair-share.js';

describe('budgetShare', () => {
  it('is maxInFlight divided by the assigned partitions, rounded up', () => {
    expect(budgetShare(1000, 4)).toBe(250);
    expect(budgetShare(1000, 3)).toBe(334);
    expect(budgetShare(10, 1)).toBe(10);
  });

  it('is at least 1 message, and the whole budget with no partition assigned', () => {
    expect(budgetShare(2, 5)).toBe(1);
    expect(budgetShare(1, 1000)).toBe(1);
    expect(budgetShare(0, 4)).toBe(1);
    expect(budgetShare(100, 0)).toBe(100);
  });
});

describe('concurrencyShare', () => {
  it('is the limit divided by the busy partitions, rounded up', () => {
    expect(concurrencyShare(16, 6)).toBe(3);
    expect(concurrencyShare(16, 4)).toBe(4);
    expect(concurrencyShare(16, 16)).toBe(1);
    expect(concurrencyShare(4, 3)).toBe(2);
  });

  it('is the whole limit for one busy partition, or none', () => {
    expect(concurrencyShare(16, 1)).toBe(16);
    expect(concurrencyShare(16, 0)).toBe(16);
  });

  it('property: the shares cover the limit, and are the smallest that do', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 1, max: 500 }), (c, b) => {
        const share = concurrencyShare(c, b);
        expect(share).toBeGreaterThanOrEqual(1);
        expect(share * b).toBeGreaterThanOrEqual(c);
        expect((share - 1) * b).toBeLessThan(c);
      }),
    );
  });
});

describe('overBudgetShare', () => {
  it('holds a partition back at its share, only while the budget is contended', () => {
    expect(overBudgetShare(10, 10, false)).toBe(true);
    expect(overBudgetShare(11, 10, false)).toBe(true);
    expect(overBudgetShare(9, 10, false)).toBe(false);
    // Below the low mark nobody is short of budget: no share applies.
    expect(overBudgetShare(500, 10, true)).toBe(false);
  });
});

describe('holdsBudgetShare', () => {
  it('lasts while the partition holds more than its share times the resume threshold', () => {
    expect(holdsBudgetShare(6, 10, 0.5)).toBe(true);
    expect(holdsBudgetShare(5, 10, 0.5)).toBe(false);
    expect(holdsBudgetShare(0, 10, 0.5)).toBe(false);
    expect(holdsBudgetShare(10, 10, 1)).toBe(false);
    expect(holdsBudgetShare(1, 10, 0)).toBe(true);
  });
});
