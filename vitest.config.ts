import { defineConfig } from 'vitest/config';

// `vitest run` runs all three projects; `--project <name>` picks one.
// Broker-backed projects share one broker started by test/global-setup.ts
// (or use KAFKA_BROKERS if set).
export default defineConfig({
  test: {
    // A project whose folder has no test files yet (faults, early on) must
    // not fail the whole run. Root-level only in vitest 4.
    passWithNoTests: true,
    // Teardown stops the broker (SIGTERM, normally < 1 s, up to 20 s before
    // SIGKILL); vitest's default 10 s would force-exit first.
    teardownTimeout: 30_000,
    // `--coverage` (npm run test:coverage, CI) measures src/ over whatever
    // projects run; the floor is meant for the full suite (unit +
    // integration + faults): the unit project alone does not reach it.
    coverage: {
      provider: 'v8',
      include: ['src/**/*.ts'],
      reporter: ['text-summary'],
      thresholds: { lines: 85 },
      // The figure is worth seeing when a test failed too.
      reportOnFailure: true,
    },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          // Runs before the broker-backed projects: fastest feedback first.
          sequence: { groupOrder: 0 },
        },
      },
      {
        test: {
          name: 'integration',
          include: ['test/integration/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['./test/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // Two files at once is what a 2-core machine and one broker handle
          // comfortably; every test uses unique topics and groups.
          maxWorkers: 2,
          // Separate groups run one after another, so fault tests (which
          // stop, pause or kill brokers) never overlap the integration tests.
          sequence: { groupOrder: 1 },
        },
      },
      {
        test: {
          name: 'faults',
          include: ['test/faults/**/*.test.ts'],
          environment: 'node',
          globalSetup: ['./test/global-setup.ts'],
          testTimeout: 300_000,
          hookTimeout: 300_000,
          // Fault tests disturb brokers and measure recovery timing; one at a time.
          fileParallelism: false,
          sequence: { groupOrder: 2 },
        },
      },
    ],
  },
});
