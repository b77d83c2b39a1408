// The demo's --ci mode, run as a user runs it (a child process with
// KAFKA_BROKERS), against the suite's broker. Its summary is the evidence:
// every message accounted for, dead letters exactly the poison messages, the
// circuit opened by the outage and nothing dead-lettered because of it. The
// HTML report is checked for a drawn chart (the screenshot in Chromium is
// `npm run demo:report`, outside CI: see the README).

import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DemoSummary } from '../../examples/demo/summary.js';
import type { LagRound, Tick, TimelineEvent } from '../../examples/demo/timeline.js';
import { brokers } from '../helpers/kafka.js';

const ROOT = resolve(import.meta.dirname, '../..');

interface Timeline {
  readonly summary: DemoSummary;
  readonly ticks: Tick[];
  readonly lag: LagRound[];
  readonly events: TimelineEvent[];
}

function runDemo(args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo.ts', ...args], {
      cwd: ROOT,
      env: { ...process.env, KAFKA_BROKERS: brokers().join(','), NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolvePromise({ code, output }));
  });
}

describe('the demo in --ci mode', () => {
  let dir: string;
  let result: { code: number | null; output: string };
  let timeline: Timeline;
  let report: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'bp-demo-test-'));
    result = await runDemo([
      '--ci',
      '--json',
      join(dir, 'timeline.json'),
      '--report',
      join(dir, 'report.html'),
    ]);
    timeline = JSON.parse(await readFile(join(dir, 'timeline.json'), 'utf8')) as Timeline;
    report = await readFile(join(dir, 'report.html'), 'utf8');
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('exits 0 with every check passed', () => {
    const tail = result.output.split('\n').slice(-40).join('\n');
    expect(result.code, tail).toBe(0);
    expect(timeline.summary.checks.filter((c) => !c.ok)).toEqual([]);
    expect(result.output).toContain('all checks passed');
  });

  it('loses nothing and processes nothing twice', () => {
    const s = timeline.summary;
    expect(s.produced).toBeGreaterThan(0);
    expect(s.lost).toBe(0);
    expect(s.produceFailures).toBe(0);
    expect(s.handled + s.deadLettered).toBe(s.produced);
    expect(s.duplicates).toBe(0);
    expect(s.finalLag).toBe(0);
  });

  it('dead-letters exactly the poison messages', () => {
    const s = timeline.summary;
    expect(s.poisonProduced).toBeGreaterThan(0);
    expect(s.deadLettered).toBe(s.poisonProduced);
    expect(s.dlqTopicRecords).toBe(s.poisonProduced);
    // A dead letter printed with the headers the library adds.
    expect(result.output).toContain('x-bp-original-offset');
    expect(result.output).toContain('x-bp-reason');
  });

  it('opens the circuit during the outage and dead-letters nothing because of it', () => {
    const outage = timeline.summary.outage;
    expect(outage).not.toBeNull();
    expect(outage!.circuitOpened).toBe(true);
    expect(outage!.deadLettered).toBe(0);
    const kinds = timeline.events.filter((e) => e.step === 'outage').map((e) => e.kind);
    expect(kinds).toContain('circuit.open');
    expect(kinds).toContain('circuit.closed');
    // Every partition paused while the circuit was open.
    const openTicks = timeline.ticks.filter((t) => t.step === 'outage' && t.circuit === 'open');
    expect(openTicks.length).toBeGreaterThan(0);
    expect(openTicks.some((t) => t.partitions.every((p) => p.reasons.includes('circuit')))).toBe(
      true,
    );
  });

  it('shows the burst: lag above the warning mark, and a recommendation', () => {
    const s = timeline.summary;
    expect(s.peakLag).toBeGreaterThanOrEqual(100);
    expect(
      timeline.events.some((e) => e.kind === 'lag.status' && e.text.includes('-> warning')),
    ).toBe(true);
    expect(timeline.events.some((e) => e.kind === 'lag.recommendation')).toBe(true);
    // The in-flight budget held: the burst stayed in Kafka.
    expect(s.peakInFlight.partition).toBeLessThanOrEqual(24);
  });

  it('writes an HTML report with the lag chart drawn from the run', () => {
    expect(report).toMatch(/^<!doctype html>/);
    expect(report).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org)/);
    const total = /<polyline fill="none" points="([^"]+)"[^>]*class="total-lag"/.exec(report);
    expect(total).not.toBeNull();
    const points = total![1]!.split(' ');
    expect(points.length).toBe(timeline.lag.length);
    // The circuit's open interval is shaded on the chart.
    expect(report).toContain('fill="#e63946" fill-opacity="0.18"');
  });
});
