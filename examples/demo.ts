/**
 * Backpressure you can watch: a scripted scenario on a local broker.
 *
 *   npm run demo                        # starts a broker, runs the five steps (~2 min)
 *   npm run demo -- --step outage       # one step alone
 *   npm run demo -- --burst-rate 100 --json reports/demo.json
 *   npm run demo -- --ci                # short, headless; exit code 1 if a check fails
 *
 * Set KAFKA_BROKERS to use a broker of your own (`tsx examples/demo.ts`).
 * The scenario lives in examples/demo/: config.ts (flags), scenario.ts (the
 * steps), view.ts (terminal), summary.ts, report.ts (HTML), timeline.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { isBackpressureError } from '../src/index.js';
import { HelpRequested, parseArgs } from './demo/config.js';
import { renderReport } from './demo/report.js';
import { runDemo } from './demo/scenario.js';

async function main(): Promise<number> {
  let config;
  try {
    config = parseArgs(process.argv.slice(2));
  } catch (error) {
    if (error instanceof HelpRequested) {
      console.log(error.message);
      return 0;
    }
    if (isBackpressureError(error) && error.code === 'ERR_CONFIG') {
      console.error(`${error.message}\nSee --help.`);
      return 2;
    }
    throw error;
  }

  // First Ctrl-C: finish the step early and still print the summary and the
  // report. Second: leave at once.
  const interrupt = new AbortController();
  const onSignal = () => {
    if (interrupt.signal.aborted) process.exit(130);
    interrupt.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const { summary, timeline } = await runDemo(config, { signal: interrupt.signal });

  const written: string[] = [];
  if (config.json !== undefined) {
    const file = resolve(config.json);
    await mkdir(dirname(file), { recursive: true });
    const { ticks, lag, events, intervals } = timeline;
    await writeFile(
      file,
      JSON.stringify({ config, summary, ticks, lag, events, intervals }, null, 1) + '\n',
    );
    written.push(`timeline: ${file}`);
  }
  if (config.report !== undefined) {
    const file = resolve(config.report);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, renderReport({ config, summary, timeline }));
    written.push(`report:   ${file}`);
  }
  for (const line of written) console.log(`  ${line}`);
  return summary.ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
