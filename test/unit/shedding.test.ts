import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError, MessageShedError, isBackpressureError } from '../../src/errors.js';
import { resolveOptions, type BackpressureConsumerOptions } from '../../src/consumer/options.js';
import { messageAgeMs, shedAge } from '../../src/consumer/failure/shedding.js';

const NOW = 1_700_000_000_000;
const producer = { send: async () => [] };

function options(extra: Record<string, unknown>): BackpressureConsumerOptions {
  return { topics: ['t'], handler: () => undefined, ...extra } as BackpressureConsumerOptions;
}

function optionOf(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).option;
  }
  throw new Error('expected a ConfigError');
}

describe('messageAgeMs / shedAge', () => {
  it('measures the age from the Kafka timestamp', () => {
    expect(messageAgeMs(String(NOW - 1500), NOW)).toBe(1500);
    expect(messageAgeMs(String(NOW + 20), NOW)).toBe(-20);
  });

  it('has no age without a usable timestamp (-1 from old message formats)', () => {
    for (const t of ['-1', '', 'abc', 'NaN', 'Infinity']) {
      expect(messageAgeMs(t, NOW)).toBeUndefined();
      expect(shedAge(t, NOW, 1)).toBeUndefined();
    }
  });

  it('sheds strictly older than maxAgeMs', () => {
    expect(shedAge(String(NOW - 1000), NOW, 1000)).toBeUndefined();
    expect(shedAge(String(NOW - 1001), NOW, 1000)).toBe(1001);
    // A producer clock ahead of ours never sheds.
    expect(shedAge(String(NOW + 5000), NOW, 1)).toBeUndefined();
  });

  it('sheds exactly the messages older than the mark', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: NOW }),
        fc.integer({ min: 1, max: 10 ** 9 }),
        (timestamp, maxAgeMs) => {
          const age = shedAge(String(timestamp), NOW, maxAgeMs);
          if (NOW - timestamp > maxAgeMs) expect(age).toBe(NOW - timestamp);
          else expect(age).toBeUndefined();
        },
      ),
    );
  });
});

describe('shed options', () => {
  it('resolves and freezes', () => {
    const o = resolveOptions(options({ shed: { maxAgeMs: 60_000, action: 'skip' } }));
    expect(o.shed).toEqual({ maxAgeMs: 60_000, action: 'skip' });
    expect(Object.isFrozen(o.shed)).toBe(true);
    const d = resolveOptions(
      options({ deadLetter: { producer }, shed: { maxAgeMs: 1, action: 'dead-letter' } }),
    );
    expect(d.shed?.action).toBe('dead-letter');
    expect(resolveOptions(options({})).shed).toBeUndefined();
  });

  it.each([
    [{ shed: true }, 'shed'],
    [{ shed: { action: 'skip' } }, 'shed.maxAgeMs'],
    [{ shed: { maxAgeMs: 0, action: 'skip' } }, 'shed.maxAgeMs'],
    [{ shed: { maxAgeMs: 1.5, action: 'skip' } }, 'shed.maxAgeMs'],
    [{ shed: { maxAgeMs: 1000 } }, 'shed.action'],
    [{ shed: { maxAgeMs: 1000, action: 'drop' } }, 'shed.action'],
    [{ shed: { maxAgeMs: 1000, action: 'dead-letter' } }, 'shed.action'],
    [{ shed: { maxAgeMs: 1000, action: 'skip', ageMs: 1 } }, 'shed.ageMs'],
  ])('rejects %o naming %s', (extra, option) => {
    expect(optionOf(() => resolveOptions(options(extra)))).toBe(option);
  });

  it('says that dead-letter needs the deadLetter option', () => {
    expect(() =>
      resolveOptions(options({ shed: { maxAgeMs: 1000, action: 'dead-letter' } })),
    ).toThrow(/"dead-letter" together with the `deadLetter` option/);
  });
});

describe('lagSampleIntervalMs', () => {
  it('defaults to 5000 and accepts 10 and more', () => {
    expect(resolveOptions(options({})).lagSampleIntervalMs).toBe(5000);
    expect(resolveOptions(options({ lagSampleIntervalMs: 10 })).lagSampleIntervalMs).toBe(10);
  });

  it.each([0, 9, 1.5, '5000', Number.POSITIVE_INFINITY])('rejects %o', (value) => {
    expect(optionOf(() => resolveOptions(options({ lagSampleIntervalMs: value })))).toBe(
      'lagSampleIntervalMs',
    );
  });
});

describe('MessageShedError', () => {
  it('is a typed, non-retriable BackpressureError that says how old', () => {
    const e = new MessageShedError(61_234.4, 60_000);
    expect(isBackpressureError(e)).toBe(true);
    expect(e).toMatchObject({
      code: 'ERR_MESSAGE_SHED',
      name: 'MessageShedError',
      retriable: false,
      ageMs: 61_234.4,
      maxAgeMs: 60_000,
    });
    expect(e.message).toContain('61234 ms old');
    expect(e.message).toContain('shed.maxAgeMs (60000 ms)');
  });
});
