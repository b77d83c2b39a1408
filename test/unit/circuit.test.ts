import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { CircuitOpenError } from '../../src/errors.js';
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

/** An error that says nothing about the downstream (a poison message's). */
class NotCounted extends Error {}

const circuits: Circuit[] = [];

function circuit(overrides: Partial<CircuitSettings> = {}): {
  circuit: Circuit;
  states: CircuitState[];
} {
  const states: CircuitState[] = [];
  const c = new Circuit(
    { ...settings, ...overrides },
    (state) => states.push(state),
    (error) => !(error instanceof NotCounted),
    100,
  );
  circuits.push(c);
  return { circuit: c, states };
}

/** Records `n` outcomes at time `now` (ms on the caller's clock). */
function record(c: Circuit, n: number, failed: boolean, now = 0): void {
  for (let i = 0; i < n; i += 1) c.record(failed, now);
}

/** Opens the circuit (10 counted failures) and lets opossum's reset timer move it to half-open. */
async function halfOpen(c: Circuit): Promise<void> {
  record(c, settings.volumeThreshold, true);
  expect(c.state).toBe('open');
  await vi.advanceTimersByTimeAsync(settings.resetTimeoutMs);
  expect(c.state).toBe('half-open');
}

/** A task whose settlement the test decides. */
function deferredTask(): {
  task: () => Promise<void>;
  resolve: () => void;
  reject: (error: unknown) => void;
  calls: () => number;
} {
  let calls = 0;
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    task: () => {
      calls += 1;
      return promise;
    },
    resolve,
    reject,
    calls: () => calls,
  };
}

// opossum's reset timer (open -> half-open) is a setTimeout; fake timers move it.
beforeEach(() => {
  vi.useFakeTimers();
});

afterEach(() => {
  for (const c of circuits.splice(0)) c.shutdown();
  vi.useRealTimers();
});

describe('Circuit.record: the opening rule while closed', () => {
  it('does not open below volumeThreshold calls, even when every call failed', () => {
    const { circuit: c, states } = circuit();
    record(c, settings.volumeThreshold - 1, true);
    expect(c.state).toBe('closed');
    expect(states).toEqual([]);
  });

  it('opens, synchronously, on the failure that brings the window to volumeThreshold calls', () => {
    const { circuit: c, states } = circuit();
    record(c, settings.volumeThreshold - 1, true);
    c.record(true, 0);
    expect(c.state).toBe('open');
    expect(states).toEqual(['open']);
  });

  it('opens only above errorThresholdPercentage, not at it', () => {
    const { circuit: c } = circuit();
    record(c, 5, false);
    record(c, 5, true);
    // 5 of 10: exactly 50 %, not above.
    expect(c.state).toBe('closed');
    c.record(true, 0);
    // 6 of 11: above.
    expect(c.state).toBe('open');
  });

  it('a success never opens, whatever the failure ratio', () => {
    const { circuit: c } = circuit({ volumeThreshold: 3 });
    record(c, 2, true);
    // The third call makes the volume, but it is a success: 2 of 3 failed, still closed until a failure is judged.
    c.record(false, 0);
    expect(c.state).toBe('closed');
    c.record(true, 0);
    expect(c.state).toBe('open');
  });

  it('a failure that does not count is a call only: it makes up the volume, not the ratio', () => {
    // Uncounted failures reach record() as failed = false.
    const { circuit: c } = circuit();
    record(c, 9, false);
    c.record(true, 0);
    // 1 failure in 10 calls.
    expect(c.state).toBe('closed');
    const { circuit: d } = circuit();
    record(d, 4, false);
    record(d, 5, true);
    expect(d.state).toBe('closed');
    // The four make the volume: 6 failures in 10 calls.
    d.record(true, 0);
    expect(d.state).toBe('open');
  });

  it('forgets outcomes older than the rolling window', () => {
    const { circuit: c } = circuit();
    record(c, 9, true, 0);
    // A whole window later the nine failures have expired: one more is 1 of 1, below the volume.
    c.record(true, settings.rollingCountTimeoutMs + 1);
    expect(c.state).toBe('closed');
    record(c, 8, true, settings.rollingCountTimeoutMs + 1);
    expect(c.state).toBe('closed');
    c.record(true, settings.rollingCountTimeoutMs + 1);
    expect(c.state).toBe('open');
  });

  it('ignores outcomes while the circuit is not closed', async () => {
    const { circuit: c, states } = circuit();
    record(c, settings.volumeThreshold, true);
    record(c, 50, true);
    record(c, 50, false);
    expect(states).toEqual(['open']);
    await vi.advanceTimersByTimeAsync(settings.resetTimeoutMs);
    record(c, 50, true);
    expect(c.state).toBe('half-open');
  });
});

describe('Circuit: opossum holds the state and its reset timer', () => {
  it('moves open -> half-open after resetTimeoutMs, not before', async () => {
    const { circuit: c, states } = circuit();
    record(c, settings.volumeThreshold, true);
    await vi.advanceTimersByTimeAsync(settings.resetTimeoutMs - 1);
    expect(c.state).toBe('open');
    await vi.advanceTimersByTimeAsync(1);
    expect(c.state).toBe('half-open');
    expect(states).toEqual(['open', 'half-open']);
  });

  it('refuses a probe while open with CircuitOpenError, without running the task', async () => {
    const { circuit: c } = circuit();
    record(c, settings.volumeThreshold, true);
    const task = vi.fn(() => Promise.resolve());
    const error = await c.probe(task, true).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(CircuitOpenError);
    expect((error as CircuitOpenError).code).toBe('ERR_CIRCUIT_OPEN');
    expect(task).not.toHaveBeenCalled();
    expect(c.state).toBe('open');
  });
});

describe('Circuit.probe: the half-open probe', () => {
  it('a successful probe closes the circuit', async () => {
    const { circuit: c, states } = circuit();
    await halfOpen(c);
    await c.probe(() => Promise.resolve(), true);
    expect(c.state).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('a counted failure reopens it, and the reset timer runs again', async () => {
    const { circuit: c, states } = circuit();
    await halfOpen(c);
    const down = new Error('still down');
    await expect(c.probe(() => Promise.reject(down), true)).rejects.toBe(down);
    expect(c.state).toBe('open');
    await vi.advanceTimersByTimeAsync(settings.resetTimeoutMs);
    expect(c.state).toBe('half-open');
    expect(states).toEqual(['open', 'half-open', 'open', 'half-open']);
  });

  it('a failure with telling = false closes it (the message used its attempts: it says nothing of the downstream)', async () => {
    const { circuit: c, states } = circuit();
    await halfOpen(c);
    const error = new Error('fails again, as it did every time');
    // The caller still sees the message's own error.
    await expect(c.probe(() => Promise.reject(error), false)).rejects.toBe(error);
    expect(c.state).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('a failure that isCounted rejects closes it', async () => {
    const { circuit: c } = circuit();
    await halfOpen(c);
    const poison = new NotCounted('poison');
    await expect(c.probe(() => Promise.reject(poison), true)).rejects.toBe(poison);
    expect(c.state).toBe('closed');
  });

  it('a close by a probe that told nothing is on trial: the first counted failure reopens it', async () => {
    const { circuit: c, states } = circuit();
    await halfOpen(c);
    expect(c.onTrial).toBe(false);
    await expect(c.probe(() => Promise.reject(new NotCounted('poison')), true)).rejects.toThrow();
    expect(c.state).toBe('closed');
    expect(c.onTrial).toBe(true);
    // A success ends the trial.
    c.record(false, 0);
    expect(c.onTrial).toBe(false);
    await vi.advanceTimersByTimeAsync(0);
    // Tried again: a close by an exhausted message's probe, then one counted failure.
    record(c, settings.volumeThreshold, true);
    await vi.advanceTimersByTimeAsync(settings.resetTimeoutMs);
    await expect(c.probe(() => Promise.reject(new Error('again')), false)).rejects.toThrow();
    expect(c.onTrial).toBe(true);
    c.record(true, 0);
    expect(c.state).toBe('open');
    expect(c.onTrial).toBe(false);
    expect(states).toEqual(['open', 'half-open', 'closed', 'open', 'half-open', 'closed', 'open']);
  });

  it('a success ends the trial: after it the window rule holds again', async () => {
    const { circuit: c } = circuit();
    await halfOpen(c);
    await expect(c.probe(() => Promise.reject(new Error('again')), false)).rejects.toThrow();
    c.record(false, 0);
    expect(c.onTrial).toBe(false);
    record(c, settings.volumeThreshold - 2, true);
    expect(c.state).toBe('closed');
    c.record(true, 0);
    expect(c.state).toBe('open');
  });

  it('a close by a probe that succeeded is not on trial', async () => {
    const { circuit: c } = circuit();
    await halfOpen(c);
    await c.probe(() => Promise.resolve(), true);
    expect(c.state).toBe('closed');
    expect(c.onTrial).toBe(false);
    c.record(true, 0);
    expect(c.state).toBe('closed');
  });

  it('refuses a second probe while one is out, then takes the first one’s verdict', async () => {
    const { circuit: c } = circuit();
    await halfOpen(c);
    const first = deferredTask();
    const probe = c.probe(first.task, true);
    expect(first.calls()).toBe(1);
    const second = vi.fn(() => Promise.resolve());
    await expect(c.probe(second, true)).rejects.toBeInstanceOf(CircuitOpenError);
    expect(second).not.toHaveBeenCalled();
    expect(c.state).toBe('half-open');
    first.resolve();
    await probe;
    expect(c.state).toBe('closed');
  });

  it('clears the window on close: the failures that opened it are history', async () => {
    const { circuit: c } = circuit();
    await halfOpen(c);
    await c.probe(() => Promise.resolve(), true);
    expect(c.state).toBe('closed');
    // Had the ten failures stayed, one more would make 11 of 11.
    c.record(true, 0);
    expect(c.state).toBe('closed');
    record(c, settings.volumeThreshold - 2, true);
    expect(c.state).toBe('closed');
    c.record(true, 0);
    expect(c.state).toBe('open');
  });
});

describe('Circuit health check', () => {
  it('is the half-open probe: a passing check closes the circuit without a message', async () => {
    let checks = 0;
    const { circuit: c, states } = circuit({
      healthCheck: () => {
        checks += 1;
        return Promise.resolve(true);
      },
    });
    expect(c.checksHealth).toBe(true);
    record(c, settings.volumeThreshold, true);
    await vi.advanceTimersByTimeAsync(settings.resetTimeoutMs);
    expect(checks).toBe(1);
    expect(c.state).toBe('closed');
    expect(states).toEqual(['open', 'half-open', 'closed']);
  });

  it('a failed check reopens it whatever isRetriable says of errors: it is never a close on trial', async () => {
    const states: CircuitState[] = [];
    // A predicate that counts only errors with a 5xx status, as a user might write.
    const c = new Circuit(
      { ...settings, healthCheck: () => Promise.resolve(false) },
      (state) => states.push(state),
      (error) => ((error as { status?: number }).status ?? 0) >= 500,
      100,
    );
    circuits.push(c);
    record(c, settings.volumeThreshold, true);
    await vi.advanceTimersByTimeAsync(settings.resetTimeoutMs);
    expect(c.state).toBe('open');
    expect(c.onTrial).toBe(false);
    expect(states).toEqual(['open', 'half-open', 'open']);
  });

  it('a failing, throwing or silent check reopens it, and the next half-open asks again', async () => {
    const answers: (() => Promise<boolean>)[] = [
      () => Promise.resolve(false),
      () => Promise.reject(new Error('check broke')),
      () => new Promise<boolean>(() => undefined),
      () => Promise.resolve(true),
    ];
    let checks = 0;
    const { circuit: c, states } = circuit({
      healthCheck: () => answers[checks++]!(),
    });
    record(c, settings.volumeThreshold, true);
    // Each reset interval a check; the silent one times out (100 ms, below).
    for (let i = 0; i < 4; i += 1) {
      await vi.advanceTimersByTimeAsync(settings.resetTimeoutMs + 100);
    }
    expect(checks).toBe(4);
    expect(c.state).toBe('closed');
    expect(states).toEqual([
      'open',
      'half-open',
      'open',
      'half-open',
      'open',
      'half-open',
      'open',
      'half-open',
      'closed',
    ]);
  });

  it('checkHealth: callers meanwhile share one running check; the signal aborts at the timeout', async () => {
    let checks = 0;
    let signal: AbortSignal | undefined;
    const { circuit: c } = circuit({
      healthCheck: (s) => {
        checks += 1;
        signal = s;
        return new Promise<boolean>(() => undefined);
      },
    });
    const a = c.checkHealth();
    const b = c.checkHealth();
    await vi.advanceTimersByTimeAsync(0);
    expect(checks).toBe(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(await a).toBe(false);
    expect(await b).toBe(false);
    expect(signal!.aborted).toBe(true);
    void c.checkHealth();
    await vi.advanceTimersByTimeAsync(0);
    expect(checks).toBe(2);
  });

  it('open() opens a closed circuit (the check said the downstream is down)', () => {
    const { circuit: c, states } = circuit();
    c.open();
    expect(c.state).toBe('open');
    expect(states).toEqual(['open']);
  });
});

describe('Circuit.changed and wakeAll', () => {
  it('resolves waiters at the next change of state, the `last` ones after the others', async () => {
    const { circuit: c } = circuit();
    const woken: string[] = [];
    void c.changed({ last: true }).then(() => woken.push('last-1'));
    void c.changed().then(() => woken.push('first-1'));
    void c.changed({ last: true }).then(() => woken.push('last-2'));
    void c.changed().then(() => woken.push('first-2'));
    await Promise.resolve();
    expect(woken).toEqual([]);
    record(c, settings.volumeThreshold, true);
    await vi.advanceTimersByTimeAsync(0);
    expect(woken).toEqual(['first-1', 'first-2', 'last-1', 'last-2']);
  });

  it('a waiter is woken once: a later change needs a new changed()', async () => {
    const { circuit: c } = circuit();
    let wakes = 0;
    void c.changed().then(() => (wakes += 1));
    record(c, settings.volumeThreshold, true);
    await vi.advanceTimersByTimeAsync(settings.resetTimeoutMs);
    expect(c.state).toBe('half-open');
    expect(wakes).toBe(1);
  });

  it('wakeAll and shutdown wake every waiter without a change', async () => {
    const { circuit: c } = circuit();
    let wakes = 0;
    void c.changed().then(() => (wakes += 1));
    void c.changed({ last: true }).then(() => (wakes += 1));
    c.wakeAll();
    await vi.advanceTimersByTimeAsync(0);
    expect(wakes).toBe(2);
    void c.changed().then(() => (wakes += 1));
    c.shutdown();
    await vi.advanceTimersByTimeAsync(0);
    expect(wakes).toBe(3);
    expect(c.state).toBe('closed');
  });
});

describe('Circuit disabled (circuitBreaker: false)', () => {
  it('runs every probe directly, never opens, and reports itself disabled', async () => {
    const states: CircuitState[] = [];
    const c = new Circuit(
      undefined,
      (s) => states.push(s),
      () => true,
    );
    expect(c.enabled).toBe(false);
    for (let i = 0; i < 100; i += 1) c.record(true, 0);
    expect(c.state).toBe('closed');
    const error = new Error('down');
    await expect(c.probe(() => Promise.reject(error), true)).rejects.toBe(error);
    await expect(c.probe(() => Promise.resolve(), true)).resolves.toBeUndefined();
    expect(states).toEqual([]);
    c.shutdown();
  });

  it('an enabled circuit says so', () => {
    expect(circuit().circuit.enabled).toBe(true);
  });
});
