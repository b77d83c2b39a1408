import { defineConfig } from 'tsup';

// p-limit is ESM-only. Bundling it (noExternal) lets the CommonJS build
// `require()` this package on Node 20 without ERR_REQUIRE_ESM; the other
// runtime dependencies ship CommonJS and stay external.
export default defineConfig({
  // The main entry, and the optional OpenTelemetry integration as its own
  // subpath (kafkajs-backpressure/otel): @opentelemetry/api stays external.
  entry: { index: 'src/index.ts', otel: 'src/otel/index.ts' },
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  splitting: false,
  treeshake: true,
  noExternal: ['p-limit', 'yocto-queue'],
  // src/metrics/metrics.ts loads the optional prom-client with
  // createRequire(import.meta.url); the shim gives the CommonJS build an
  // import.meta.url (from __filename) instead of an empty import.meta.
  shims: true,
});
