import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'tsup';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import config from '../../tsup.config.js';
import { FakeClient } from '../helpers/fake-client.js';

type Api = typeof import('../../src/index.js');

// The package built as it ships (tsup.config.ts, ESM and CommonJS), into a
// folder of its own so a stale dist/ cannot hide a regression; then both
// builds loaded side by side, as when one tree holds two copies.
let dir: string;
let esm: Api;
let cjs: Api;

beforeAll(async () => {
  // Inside the checkout, so the bundles resolve their dependencies from its node_modules.
  const root = fileURLToPath(new URL('../..', import.meta.url));
  dir = mkdtempSync(join(root, '.tmp-cross-copy-'));
  await build({
    ...(config as object),
    outDir: dir,
    dts: false,
    sourcemap: false,
    silent: true,
    config: false,
  });
  esm = (await import(pathToFileURL(join(dir, 'index.js')).href)) as Api;
  cjs = createRequire(import.meta.url)(join(dir, 'index.cjs')) as Api;
}, 60_000);

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('errors across two copies of the package (ESM beside CommonJS)', () => {
  it('the two builds are distinct copies: their classes differ', () => {
    expect(esm.ConfigError).not.toBe(cjs.ConfigError);
    expect(Object.getPrototypeOf(new esm.ConfigError('x', 'y', 1))).not.toBe(
      cjs.ConfigError.prototype,
    );
  });

  it.each([
    ['esm → cjs', () => esm, () => cjs],
    ['cjs → esm', () => cjs, () => esm],
  ])('%s: an error from one passes the guard and instanceof of the other', (_, from, to) => {
    const a = from();
    const b = to();
    const config = new a.ConfigError('retry.maxAttempts', 'an integer', -1);
    expect(b.isBackpressureError(config)).toBe(true);
    expect(config instanceof b.BackpressureError).toBe(true);
    expect(config instanceof b.ConfigError).toBe(true);
    expect(config instanceof b.HandlerTimeoutError).toBe(false);
    expect(config instanceof b.NonRetriableError).toBe(false);

    const closed = new a.ProducerClosedError('closing', { mayHaveBeenWritten: true });
    expect(closed instanceof b.ProducerClosedError).toBe(true);
    expect(closed instanceof b.ProducerDrainTimeoutError).toBe(false);
    expect(new a.NonRetriableError('bad input') instanceof b.NonRetriableError).toBe(true);
  });

  it('plain errors and look-alikes without the brand are not ours', () => {
    const lookAlike = Object.assign(new Error('x'), { code: 'ERR_CONFIG', retriable: false });
    for (const api of [esm, cjs]) {
      expect(api.isBackpressureError(lookAlike)).toBe(false);
      expect(lookAlike instanceof api.BackpressureError).toBe(false);
      expect(api.isBackpressureError(undefined)).toBe(false);
      expect(api.isBackpressureError('ERR_CONFIG')).toBe(false);
    }
  });

  it("a user's subclass is checked the ordinary way", () => {
    class MyError extends esm.NonRetriableError {}
    expect(new MyError('mine') instanceof MyError).toBe(true);
    expect(new esm.NonRetriableError('not mine') instanceof MyError).toBe(false);
    expect(new cjs.NonRetriableError('not mine') instanceof MyError).toBe(false);
    expect(new MyError('mine') instanceof cjs.NonRetriableError).toBe(true);
  });

  it("registerMetrics of one copy measures the other copy's consumer and producer", async () => {
    const consumer = new esm.BackpressureConsumer(new FakeClient(), {
      topics: ['t'],
      handler: async () => {},
    });
    const producer = new esm.RateLimitedProducer({
      send: async () => [],
      disconnect: async () => {},
    } as unknown as ConstructorParameters<Api['RateLimitedProducer']>[0]);
    expect(consumer instanceof cjs.BackpressureConsumer).toBe(true);
    expect(producer instanceof cjs.RateLimitedProducer).toBe(true);
    expect(producer instanceof cjs.BackpressureConsumer).toBe(false);
    const registry = new Registry();
    const registration = cjs.registerMetrics(registry, {
      consumers: [consumer],
      producers: { dlq: producer },
    });
    expect(registration.names).toContain('kafka_consumer_paused');
    registration.unregister();
    expect(() => cjs.registerMetrics(registry, { consumers: [{}] as never })).toThrow(
      cjs.ConfigError,
    );
    await producer.close();
    await consumer.close();
  });
});
