// README's Usage, run as it is written: the ts block under "## Usage" is
// taken from README.md, its package import pointed at src/, its topic and
// group renamed to fresh ones, and run in a child process against the test
// broker with a local "billing" server. After SIGTERM, with work in flight,
// the process must finish that work, commit, and exit by itself (code 0)
// within the drain timeout it passes to close() plus a few seconds. A
// shutdown that leaves anything connected (the DLQ producer, say) keeps
// Node alive, and Kubernetes would SIGKILL it at the end of its grace period.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { runChild, sleep, type Child } from '../helpers/faults.js';
import {
  committedOffsets,
  createTopic,
  disconnectAll,
  produceMessages,
  uniqueName,
} from '../helpers/kafka.js';

const ROOT = new URL('../../', import.meta.url);
const MESSAGES = 400;
/** What the billing server takes per call: enough to have work in flight at SIGTERM. */
const BILLING_MS = 300;
/** Beyond the drain timeout: the final commit, KafkaJS's fetch in progress (maxWaitTimeInMs), disconnects. */
const GRACE_MS = 5000;

/** The first ```ts block after `## Usage` in README.md. */
function usageBlock(): string {
  const readme = readFileSync(new URL('README.md', ROOT), 'utf8');
  const section = readme.slice(readme.indexOf('\n## Usage\n'));
  const match = /```ts\n([\s\S]*?)\n```/.exec(section);
  if (!match) throw new Error('README.md has no ts block under "## Usage"');
  return match[1]!;
}

function replaceOnce(source: string, from: string, to: string): string {
  const count = source.split(from).length - 1;
  if (count !== 1)
    throw new Error(`expected ${from} once in README's Usage, found it ${count} times`);
  return source.replace(from, to);
}

const dir = fileURLToPath(new URL('reports/readme-usage/', ROOT));
let child: Child | undefined;
let billing: Server | undefined;

afterAll(async () => {
  await child?.kill();
  billing?.closeAllConnections();
  await new Promise<void>((resolve) => (billing ? billing.close(() => resolve()) : resolve()));
  await disconnectAll();
  rmSync(dir, { recursive: true, force: true });
});

describe("README's Usage", () => {
  it('exits by itself after SIGTERM, within its drain timeout plus a few seconds, having finished its work', async () => {
    const code = usageBlock();
    const drain = /close\(\{ drainTimeoutMs: ([\d_]+) \}\)/.exec(code);
    expect(drain, 'the Usage closes the consumer with a drainTimeoutMs').not.toBeNull();
    const drainTimeoutMs = Number(drain![1]!.replaceAll('_', ''));

    const topic = uniqueName('readme-orders');
    const groupId = uniqueName('g-readme-orders');
    await createTopic(topic, 3);
    await createTopic(`${topic}.dlq`, 1);

    // The downstream: answers 200 after BILLING_MS, counting calls begun and answered.
    let begun = 0;
    let answered = 0;
    billing = createServer((req, res) => {
      begun += 1;
      req.resume();
      setTimeout(() => {
        answered += 1;
        res.writeHead(200).end('ok');
      }, BILLING_MS);
    });
    await new Promise<void>((resolve) => billing!.listen(0, '127.0.0.1', resolve));
    const billingUrl = `http://127.0.0.1:${(billing.address() as AddressInfo).port}`;

    let source = replaceOnce(
      code,
      "from 'kafkajs-backpressure'",
      `from ${JSON.stringify(pathToFileURL(fileURLToPath(new URL('src/index.ts', ROOT))).href)}`,
    );
    source = replaceOnce(source, "topics: ['orders']", `topics: [${JSON.stringify(topic)}]`);
    source = replaceOnce(
      source,
      "groupId: 'orders-service'",
      `groupId: ${JSON.stringify(groupId)}`,
    );
    mkdirSync(dir, { recursive: true });
    const file = pathToFileURL(`${dir}${groupId}.ts`);
    // fromBeginning is not in the Usage: the group must join before the orders arrive.
    writeFileSync(file, source);

    child = runChild(file, { BILLING_URL: billingUrl, KAFKAJS_NO_PARTITIONER_WARNING: '1' });
    const joined = Date.now();
    // Wait until the group is consuming: produce, and see the billing calls start.
    await sleep(3000);
    await produceMessages(
      topic,
      Array.from({ length: MESSAGES }, (_, i) => ({
        key: `customer-${i % 50}`,
        value: JSON.stringify({ id: `o${i}`, customer: `customer-${i % 50}`, amount: 10 }),
      })),
    );
    const deadline = Date.now() + 60_000;
    while (begun < 60 && Date.now() < deadline && child.process.exitCode === null) await sleep(50);
    expect(
      begun,
      `billing calls began (${Date.now() - joined} ms):\n${child.stderr()}`,
    ).toBeGreaterThanOrEqual(60);
    const inFlightAtSignal = begun - answered;
    expect(inFlightAtSignal, 'work in flight when SIGTERM arrives').toBeGreaterThan(0);

    const signalledAt = Date.now();
    child.process.kill('SIGTERM');
    const exit = await Promise.race([
      child.exited,
      sleep(drainTimeoutMs + GRACE_MS + 10_000).then(() => 'still running' as const),
    ]);
    const exitMs = Date.now() - signalledAt;
    console.log(
      `[readme-usage] SIGTERM with ${inFlightAtSignal} billing call(s) in flight; exited after ${exitMs} ms: ${JSON.stringify(exit)}`,
    );
    expect(exit, `the process did not exit by itself:\n${child.stderr()}`).toEqual({
      code: 0,
      signal: null,
    });
    expect(exitMs).toBeLessThan(drainTimeoutMs + GRACE_MS);
    expect(child.lines.some((line) => line.startsWith('SIGTERM: draining'))).toBe(true);
    // The drain let every call that had begun finish, and what finished was committed.
    expect(answered).toBe(begun);
    const committed = await committedOffsets(groupId, topic);
    const total = [...committed.values()].reduce((sum, offset) => sum + Math.max(0, offset), 0);
    expect(total).toBeGreaterThan(0);
    expect(total).toBeLessThanOrEqual(answered);
  });
});
