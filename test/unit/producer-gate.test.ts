import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConcurrencyGate } from '../../src/producer/gate.js';

describe('ConcurrencyGate', () => {
  it('grants at once up to the limit and refuses beyond it', () => {
    const gate = new ConcurrencyGate(2);
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.tryAcquire()).toBe(false);
    expect(gate.active).toBe(2);
    gate.release();
    expect(gate.tryAcquire()).toBe(true);
  });

  it('a lowered limit cuts nothing short and grants nothing until enough slots were released', () => {
    const gate = new ConcurrencyGate(4);
    for (let i = 0; i < 4; i += 1) gate.tryAcquire();
    gate.setLimit(2);
    expect(gate.active).toBe(4);
    gate.release();
    expect(gate.tryAcquire()).toBe(false);
    gate.release();
    expect(gate.tryAcquire()).toBe(false);
    gate.release();
    expect(gate.active).toBe(1);
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.tryAcquire()).toBe(false);
  });

  it('a raised limit grants the new slots at once', () => {
    const gate = new ConcurrencyGate(1);
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.tryAcquire()).toBe(false);
    gate.setLimit(3);
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.tryAcquire()).toBe(true);
    expect(gate.tryAcquire()).toBe(false);
  });

  it('refuses a limit that is not a positive integer, and a release without a slot', () => {
    expect(() => new ConcurrencyGate(0)).toThrow(RangeError);
    expect(() => new ConcurrencyGate(1.5)).toThrow(RangeError);
    const gate = new ConcurrencyGate(1);
    expect(() => gate.setLimit(Number.NaN)).toThrow(RangeError);
    expect(() => gate.release()).toThrow(/without a held slot/);
  });

  it('never grants a slot while the slots held reach the limit in force (any sequence)', () => {
    type Step = { kind: 'acquire' } | { kind: 'release' } | { kind: 'limit'; value: number };
    const step = fc.oneof(
      fc.constant<Step>({ kind: 'acquire' }),
      fc.constant<Step>({ kind: 'release' }),
      fc.integer({ min: 1, max: 8 }).map((value): Step => ({ kind: 'limit', value })),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(step, { maxLength: 200 }),
        (start, steps) => {
          const gate = new ConcurrencyGate(start);
          let held = 0;
          let limit = start;
          for (const s of steps) {
            if (s.kind === 'acquire') {
              const granted = gate.tryAcquire();
              expect(granted).toBe(held < limit);
              if (granted) held += 1;
            } else if (s.kind === 'release') {
              if (held === 0) continue;
              gate.release();
              held -= 1;
            } else {
              gate.setLimit(s.value);
              limit = s.value;
            }
            expect(gate.active).toBe(held);
          }
        },
      ),
    );
  });
});
