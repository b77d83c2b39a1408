// vitest globalSetup for the projects that need a real broker (integration,
// faults). Runs in vitest's main process before any test file. Workers are
// forked after it returns and inherit its process.env (checked: vitest 4
// builds each pool's env from process.env at run time), so KAFKA_BROKERS set
// here reaches test/helpers/kafka.ts without provide/inject.

import type { TestProject } from 'vitest/node';

interface BrokerHandle {
  brokers: string[];
  pid: number | null;
  logFile: string;
  stop(): Promise<void>;
}

interface KafkaScript {
  startBroker(options?: { log?: (msg: string) => void }): Promise<BrokerHandle>;
}

// Both the integration and the faults project list this file, and vitest
// loads it once per project (separate module instances, same process), so
// the broker is shared through globalThis and stopped by the last teardown.
const SHARED = Symbol.for('kafkajs-backpressure.test-broker');

interface Shared {
  refs: number;
  broker: Promise<BrokerHandle>;
}

type GlobalWithBroker = typeof globalThis & { [SHARED]?: Shared };

const log = (msg: string): void => {
  process.stderr.write(`[kafka] ${msg}\n`);
};

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const g = globalThis as GlobalWithBroker;

  if (!g[SHARED] && process.env['KAFKA_BROKERS']) {
    log(
      `using existing broker KAFKA_BROKERS=${process.env['KAFKA_BROKERS']} (project ${project.name})`,
    );
    return async () => {};
  }

  let shared = g[SHARED];
  if (!shared) {
    // A URL, not a bare relative specifier: the script is plain JS without
    // type declarations, and an absolute file URL resolves the same under
    // vitest's module runner and under Node.
    const scriptUrl: string = new URL('../scripts/kafka.mjs', import.meta.url).href;
    const broker = (import(scriptUrl) as Promise<KafkaScript>).then(({ startBroker }) =>
      startBroker({ log }),
    );
    const created: Shared = { refs: 0, broker };
    // A failed start must not be handed to the next project's setup.
    broker.catch(() => {
      if (g[SHARED] === created) delete g[SHARED];
    });
    g[SHARED] = shared = created;
  }

  shared.refs += 1;
  const broker = await shared.broker;
  process.env['KAFKA_BROKERS'] = broker.brokers.join(',');
  if (shared.refs === 1) {
    log(
      `test broker started at ${broker.brokers.join(',')} (pid ${broker.pid}, log ${broker.logFile})`,
    );
  }

  let tornDown = false;
  return async () => {
    if (tornDown) return;
    tornDown = true;
    shared.refs -= 1;
    if (shared.refs > 0) return;
    delete g[SHARED];
    delete process.env['KAFKA_BROKERS'];
    const started = performance.now();
    await broker.stop();
    log(`test broker stopped in ${((performance.now() - started) / 1000).toFixed(1)}s`);
  };
}
