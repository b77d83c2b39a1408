import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { OutcomeWindow } from '../../src/consumer/failure/outcome-window.js';

// A 1 s window of 10 slices of 100 ms; times are the caller's clock, injected.
const window = (): OutcomeWindow => new OutcomeWindow(1000, 10);

describe('OutcomeWindow', () => {
  it('counts calls and failures', () => {
    const w = window();
    expect(w.read(0)).toEqual({ calls: 0, failures: 0 });
    w.record(false, 10);
    w.record(true, 20);
    w.record(true, 30);
    expect([w.calls, w.failures]).toEqual([3, 2]);
    expect(w.read(40)).toEqual({ calls: 3, failures: 2 });
  });

  it('keeps an outcome for the whole window and drops it as its slice expires', () => {
    const w = window();
    w.record(true, 0);
    w.record(false, 950);
    // The slice of t = 0 is the oldest of the ten until t = 1000.
    expect(w.read(999)).toEqual({ calls: 2, failures: 1 });
    expect(w.read(1000)).toEqual({ calls: 1, failures: 0 });
    expect(w.read(1899)).toEqual({ calls: 1, failures: 0 });
    expect(w.read(1900)).toEqual({ calls: 0, failures: 0 });
  });

  it('expires slices on record too, without a read or a timer', () => {
    const w = window();
    for (let i = 0; i < 5; i += 1) w.record(true, 100 * i);
    w.record(false, 1250);
    // Slices of t = 0, 100 and 200 are gone; 300 and 400 remain.
    expect([w.calls, w.failures]).toEqual([3, 2]);
  });

  it('drops everything after a gap longer than the window', () => {
    const w = window();
    for (let i = 0; i < 10; i += 1) w.record(true, 100 * i);
    expect(w.read(999).calls).toBe(10);
    w.record(false, 1_000_000);
    expect(w.read(1_000_000)).toEqual({ calls: 1, failures: 0 });
  });

  it('clear forgets every outcome, and counts afresh from any time', () => {
    const w = window();
    w.record(true, 5000);
    w.record(true, 5100);
    w.clear();
    expect([w.calls, w.failures]).toEqual([0, 0]);
    // An earlier time than before the clear is a fresh start, not a clock gone back.
    w.record(true, 100);
    expect(w.read(100)).toEqual({ calls: 1, failures: 1 });
    expect(w.read(1100)).toEqual({ calls: 0, failures: 0 });
    w.clear();
    expect(w.read(5100)).toEqual({ calls: 0, failures: 0 });
  });

  it('a clock that goes back counts in the newest slice, which expires as usual', () => {
    const w = window();
    w.record(false, 500);
    w.record(true, 100);
    expect(w.read(500)).toEqual({ calls: 2, failures: 1 });
    // Had it landed in the slice of t = 100, it would be gone at t = 1100.
    expect(w.read(1100)).toEqual({ calls: 2, failures: 1 });
    expect(w.read(1500)).toEqual({ calls: 0, failures: 0 });
    // A read at an earlier time changes nothing either.
    w.record(true, 1600);
    expect(w.read(0)).toEqual({ calls: 1, failures: 1 });
  });

  it('property: matches a plain list of timed outcomes (slice-aligned expiry)', () => {
    const event = fc.record({ dt: fc.nat(400), failed: fc.boolean(), read: fc.boolean() });
    fc.assert(
      fc.property(fc.array(event, { maxLength: 200 }), (events) => {
        const w = window();
        const kept: { slice: number; failed: boolean }[] = [];
        let now = 0;
        for (const e of events) {
          now += e.dt;
          const slice = Math.floor(now / 100);
          if (!e.read) {
            w.record(e.failed, now);
            kept.push({ slice, failed: e.failed });
          }
          // An outcome lives while its slice is one of the last ten.
          const live = kept.filter((k) => k.slice > slice - 10);
          const expected = { calls: live.length, failures: live.filter((k) => k.failed).length };
          expect(w.read(now)).toEqual(expected);
        }
      }),
    );
  });
});
