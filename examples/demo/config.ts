/**
 * The demo's command line: every flag, its default in the full run and in
 * `--ci`, and its validation (a bad flag is a ConfigError naming it, like a
 * bad option of the library).
 */
import { ConfigError } from '../../src/index.js';

export const STEPS = ['baseline', 'burst', 'answer', 'outage', 'poison'] as const;
export type StepName = (typeof STEPS)[number];

export interface DemoConfig {
  /** Steps to run, in scenario order (the summary always runs). */
  readonly steps: readonly StepName[];
  readonly partitions: number;
  /** Simulated downstream time per message. */
  readonly workMs: number;
  /** Baseline produce rate, msg/s. */
  readonly rate: number;
  /** Produce rate during the burst, msg/s. */
  readonly burstRate: number;
  readonly baselineSeconds: number;
  readonly burstSeconds: number;
  readonly outageSeconds: number;
  /** Poison messages produced in the poison step (half malformed JSON, half failing validation). */
  readonly poison: number;
  /** Handlers at once in `key` ordering (step 3). */
  readonly keyConcurrency: number;
  readonly warningLag: number;
  readonly criticalLag: number;
  /** Longest wait for a drain or a recovery before the step gives up and says so. */
  readonly stepTimeoutSeconds: number;
  readonly ci: boolean;
  /** Line logging instead of the refreshing view (also when stdout is not a terminal). */
  readonly plain: boolean;
  readonly color: boolean;
  readonly json: string | undefined;
  readonly report: string | undefined;
  readonly brokers: readonly string[];
}

export const USAGE = `Usage: npm run demo -- [flags]      (or: tsx examples/demo.ts with KAFKA_BROKERS set)

A scripted scenario on a local broker: a slow downstream, a burst, the
library's answer, a downstream outage, poison messages, then a summary.

  --step <names>          run only these steps, comma separated:
                          ${STEPS.join(', ')} (the summary always runs)
  --rate <msg/s>          baseline produce rate                 (default 8)
  --burst-rate <msg/s>    produce rate during the burst         (default 60, --ci 80)
  --work-ms <ms>          simulated downstream time per message (default 500)
  --partitions <n>        partitions of the demo topic          (default 6)
  --concurrency <n>       handlers at once in key ordering      (default 64)
  --baseline-seconds <s>  (default 10, --ci 3)
  --burst-seconds <s>     (default 12, --ci 5)
  --outage-seconds <s>    (default 8, --ci 4)
  --poison <n>            poison messages in step 5             (default 6, --ci 4)
  --warning-lag <n>       lag monitor marks                     (default 100)
  --critical-lag <n>                                            (default 300)
  --step-timeout-seconds <s>  longest wait for a drain or a recovery (default 60, --ci 45)
  --ci                    short run, line logging, no colours; exit code 1 if a check fails
  --plain                 line logging even on a terminal
  --json <file>           write the timeline (samples, events, intervals, summary) as JSON
  --report <file>         where the HTML report goes     (default reports/demo-report.html)
  --no-report             write no HTML report
  --help

KAFKA_BROKERS=host:port[,host:port] picks the broker (npm run demo starts one).`;

export class HelpRequested extends Error {}

interface Flag {
  readonly name: string;
  readonly value: string | undefined;
}

function* flags(argv: readonly string[]): Generator<Flag> {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError('arguments', 'flags starting with --', arg);
    const eq = arg.indexOf('=');
    if (eq > 0) {
      yield { name: arg.slice(2, eq), value: arg.slice(eq + 1) };
      continue;
    }
    const name = arg.slice(2);
    const next = argv[i + 1];
    if (BOOLEAN_FLAGS.has(name) || next === undefined || next.startsWith('--')) {
      yield { name, value: undefined };
    } else {
      yield { name, value: next };
      i += 1;
    }
  }
}

const BOOLEAN_FLAGS = new Set(['ci', 'plain', 'no-report', 'help']);

function positive(flag: string, value: string | undefined, integer: boolean): number {
  const n = value === undefined ? Number.NaN : Number(value);
  if (!Number.isFinite(n) || n <= 0 || (integer && !Number.isInteger(n))) {
    throw new ConfigError(
      `--${flag}`,
      integer ? 'an integer greater than 0' : 'a number greater than 0',
      value,
    );
  }
  return n;
}

export function parseArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  stdoutIsTTY = Boolean(process.stdout.isTTY),
): DemoConfig {
  const given = new Map<string, string | undefined>();
  for (const { name, value } of flags(argv)) given.set(name, value);
  if (given.has('help')) throw new HelpRequested(USAGE);

  const ci = given.has('ci');
  const num = (flag: string, full: number, short: number, integer = false): number => {
    if (!given.has(flag)) return ci ? short : full;
    const value = given.get(flag);
    given.delete(flag);
    return positive(flag, value, integer);
  };

  let steps: StepName[] = [...STEPS];
  if (given.has('step')) {
    const raw = given.get('step') ?? '';
    given.delete('step');
    const names = raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    const unknown = names.find((n) => !(STEPS as readonly string[]).includes(n));
    if (names.length === 0 || unknown !== undefined) {
      throw new ConfigError('--step', `step names among ${STEPS.join(', ')}`, raw);
    }
    // Scenario order whatever order they were given in.
    steps = STEPS.filter((s) => names.includes(s));
  }

  const config = {
    steps,
    partitions: num('partitions', 6, 6, true),
    workMs: num('work-ms', 500, 500),
    rate: num('rate', 8, 8),
    burstRate: num('burst-rate', 60, 80),
    baselineSeconds: num('baseline-seconds', 10, 3),
    burstSeconds: num('burst-seconds', 12, 5),
    outageSeconds: num('outage-seconds', 8, 4),
    poison: num('poison', 6, 4, true),
    keyConcurrency: num('concurrency', 64, 64, true),
    warningLag: num('warning-lag', 100, 100, true),
    criticalLag: num('critical-lag', 300, 300, true),
    stepTimeoutSeconds: num('step-timeout-seconds', 60, 45),
  };

  const file = (flag: string): string | undefined => {
    if (!given.has(flag)) return undefined;
    const value = given.get(flag);
    given.delete(flag);
    if (value === undefined || value.trim() === '')
      throw new ConfigError(`--${flag}`, 'a file path', value);
    return value;
  };
  const json = file('json');
  const reportFile = file('report');
  const noReport = given.delete('no-report');
  given.delete('ci');
  const plain = given.delete('plain') || ci || !stdoutIsTTY;

  const leftover = [...given.keys()][0];
  if (leftover !== undefined) {
    throw new ConfigError(`--${leftover}`, 'a known flag (see --help)', given.get(leftover));
  }

  const capacity = (config.partitions * 1000) / config.workMs;
  if (config.rate >= capacity) {
    throw new ConfigError(
      '--rate',
      `a baseline below the partition-mode capacity (${config.partitions} partitions × 1000 / ${config.workMs} ms = ${capacity} msg/s)`,
      config.rate,
    );
  }
  if (config.burstRate <= capacity) {
    throw new ConfigError(
      '--burst-rate',
      `a burst above the partition-mode capacity (${capacity} msg/s), or nothing piles up`,
      config.burstRate,
    );
  }
  if (config.warningLag >= config.criticalLag) {
    throw new ConfigError(
      '--warning-lag',
      `a mark below --critical-lag (${config.criticalLag})`,
      config.warningLag,
    );
  }

  const brokers = (env['KAFKA_BROKERS'] ?? '')
    .split(',')
    .map((b) => b.trim())
    .filter(Boolean);
  if (brokers.length === 0) {
    throw new ConfigError(
      'KAFKA_BROKERS',
      'host:port of a broker (`npm run demo` starts one and sets it)',
      env['KAFKA_BROKERS'],
    );
  }

  return {
    ...config,
    ci,
    plain,
    color: !ci && stdoutIsTTY && env['NO_COLOR'] === undefined,
    json,
    report: noReport ? undefined : (reportFile ?? 'reports/demo-report.html'),
    brokers,
  };
}
