import { describe, expect, it } from 'vitest';
import {
  Circuit,
  type CircuitSettings,
  type CircuitState,
} from '../../src/consumer/failure/breaker.js';

const settings: CircuitSettings = {
  errorThresholdPercentage: 50,
  volumeThreshold: 10,
  resetTimeoutMs: 40,
  rollingCountTimeoutMs: 10_000,
  rollingCountBuckets: 10,
};

class NotCounted extends Error {}

function circuit(): { circuit: Circuit; states: CircuitState[] } {
  const states: CircuitState[] = [];
  const c = new Circuit(
    settings,
    (state) => states.push(state),
    (error) => !(error instanceof NotCounted),
  );
  return { circuit: c, states };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// Calls the dispatcher ran outside opossum's call path and reported after
// must weigh exactly like calls made through it.
describe('Circuit: calls reported after running outside run()', () => {
  it('opens by opossum’s own rule once reported failures pass the threshold', async () => {
    const { circuit: c, states } = circuit();
    for (let i = 0; i < 10; i += 1) c.succeeded();
    // 10 successes: 10 failures make 50%, not above the threshold.
    for (let i = 0; i < 10; i += 1) await c.failed(new Error('down'));
    expect(c.state).toBe('closed');
    await c.failed(new Error('down'));
    expect(c.state).toBe('open');
    expect(states).toEqual(['open']);
    c.shutdown();
  });

  it('weighs a reported success like a success through run()', async () => {
    const { circuit: a } = circuit();
    const { circuit: b } = circuit();
    for (let i = 0; i < 12; i += 1) {
      a.succeeded();
      await b.run(() => Promise.resolve());
    }
    for (let i = 0; i < 12; i += 1) {
      await a.failed(new Error('down'));
      await b.run(() => Promise.reject(new Error('down'))).catch(() => undefined);
    }
    expect(a.state).toBe('closed');
    expect(b.state).toBe('closed');
    await a.failed(new Error('down'));
    await b.run(() => Promise.reject(new Error('down'))).catch(() => undefined);
    expect(a.state).toBe('open');
    expect(b.state).toBe('open');
    a.shutdown();
    b.shutdown();
  });

  it('does not count a reported failure the error filter leaves out', async () => {
    const { circuit: c } = circuit();
    for (let i = 0; i < 30; i += 1) await c.failed(new NotCounted('poison'));
    expect(c.state).toBe('closed');
    c.shutdown();
  });

  it('a reported success closes a half-open circuit, a reported failure reopens it', async () => {
    const { circuit: c, states } = circuit();
    for (let i = 0; i < 10; i += 1) await c.failed(new Error('down'));
    expect(c.state).toBe('open');
    // Refused while open: resolves, nothing moves.
    await c.failed(new Error('down'));
    expect(c.state).toBe('open');
    await sleep(settings.resetTimeoutMs + 30);
    expect(c.state).toBe('half-open');
    await c.failed(new Error('still down'));
    expect(c.state).toBe('open');
    await sleep(settings.resetTimeoutMs + 30);
    expect(c.state).toBe('half-open');
    c.succeeded();
    expect(c.state).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
    c.shutdown();
  });
});
