/**
 * A self-contained HTML report of a demo run: one file, no script, no
 * external resource. Inline SVG charts share one time axis: lag (total and
 * per partition) with the steps, the outage and the circuit's open and
 * half-open intervals shaded; swimlanes of paused partitions by reason;
 * produce and consume rates; in-flight messages. Then the figures, the
 * checks and the event log.
 */
import type { DemoConfig } from './config.js';
import type { DemoSummary } from './summary.js';
import type { Interval, Timeline } from './timeline.js';

export interface ReportInput {
  readonly config: DemoConfig;
  readonly summary: DemoSummary;
  readonly timeline: Timeline;
}

const WIDTH = 1100;
const LEFT = 84;
const RIGHT = 16;
const PLOT = WIDTH - LEFT - RIGHT;

export const REASON_COLORS: Readonly<Record<string, string>> = {
  'queue-full': '#f4a261',
  'partition-full': '#e9c46a',
  circuit: '#e63946',
  latency: '#9b5de5',
  'dlq-unavailable': '#6d597a',
  'message-failed': '#b5179e',
  'downstream-lag': '#2a9d8f',
  manual: '#577590',
  closing: '#adb5bd',
};
const PARTITION_COLORS = [
  '#4c78a8',
  '#72b7b2',
  '#54a24b',
  '#b279a2',
  '#ff9da6',
  '#9d755d',
  '#bab0ac',
  '#eeca3b',
];
const LAG_COLOR = '#1d3557';

const esc = (s: string): string =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const n1 = (n: number): string => (Math.round(n * 10) / 10).toString();

function niceStep(max: number, ticks = 5): number {
  const raw = Math.max(max, 1) / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  const unit = raw / power;
  return (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10) * power;
}

class Axis {
  constructor(
    readonly duration: number,
    readonly top: number,
    readonly height: number,
    readonly max: number,
  ) {}
  x(t: number): number {
    return LEFT + (Math.min(Math.max(t, 0), this.duration) / this.duration) * PLOT;
  }
  y(v: number): number {
    return this.top + this.height - (Math.min(v, this.max) / this.max) * this.height;
  }
}

function polyline(points: readonly (readonly [number, number])[], a: Axis, attrs: string): string {
  if (points.length === 0) return '';
  const d = points.map(([t, v]) => `${n1(a.x(t))},${n1(a.y(v))}`).join(' ');
  return `<polyline fill="none" points="${d}" ${attrs}/>`;
}

function band(a: Axis, i: { start: number; end: number }, fill: string, extra = ''): string {
  const x = a.x(i.start);
  const w = Math.max(1, a.x(i.end) - x);
  return `<rect x="${n1(x)}" y="${a.top}" width="${n1(w)}" height="${a.height}" fill="${fill}" ${extra}/>`;
}

function timeAxis(a: Axis, y: number): string {
  const step = niceStep(a.duration, 10);
  const parts: string[] = [];
  for (let t = 0; t <= a.duration + 1e-9; t += step) {
    parts.push(
      `<line x1="${n1(a.x(t))}" x2="${n1(a.x(t))}" y1="${y}" y2="${y + 4}" stroke="#888"/>`,
      `<text x="${n1(a.x(t))}" y="${y + 16}" class="tick" text-anchor="middle">${t.toFixed(0)} s</text>`,
    );
  }
  return parts.join('');
}

function valueAxis(a: Axis, unit = ''): string {
  const step = niceStep(a.max);
  const parts: string[] = [];
  for (let v = 0; v <= a.max + 1e-9; v += step) {
    parts.push(
      `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${n1(a.y(v))}" y2="${n1(a.y(v))}" stroke="#e5e5e5"/>`,
      `<text x="${LEFT - 6}" y="${n1(a.y(v) + 4)}" class="tick" text-anchor="end">${v}${unit}</text>`,
    );
  }
  return parts.join('');
}

function stepBands(a: Axis, steps: readonly Interval[], labels: boolean): string {
  return steps
    .map((s, i) => {
      const fill = i % 2 === 0 ? '#f6f7f9' : '#ffffff';
      // A band too narrow for its name (the summary, a step cut short) goes unlabelled.
      const fits = a.x(s.end) - a.x(s.start) >= s.label.length * 6 + 4;
      const label =
        labels && fits
          ? `<text x="${n1(a.x(s.start) + 4)}" y="${a.top + 13}" class="step">${esc(s.label)}</text>`
          : '';
      return band(a, s, fill) + label;
    })
    .join('');
}

function lagChart(input: ReportInput, duration: number): string {
  const { timeline: t, config } = input;
  const top = 24;
  const height = 280;
  const peak = Math.max(config.criticalLag * 1.1, ...t.lag.map((r) => r.total));
  const a = new Axis(duration, top, height, niceStep(peak) * Math.ceil(peak / niceStep(peak)));
  const steps = t.intervals.filter((i) => i.kind === 'step');
  const parts = [stepBands(a, steps, true)];
  for (const i of t.intervals) {
    if (i.kind === 'outage') parts.push(band(a, i, 'url(#hatch)'));
    if (i.kind === 'circuit' && i.label === 'open')
      parts.push(band(a, i, '#e63946', 'fill-opacity="0.18"'));
    if (i.kind === 'circuit' && i.label === 'half-open')
      parts.push(band(a, i, '#f4a261', 'fill-opacity="0.25"'));
  }
  parts.push(valueAxis(a));
  for (const [mark, color, name] of [
    [config.warningLag, '#e9a100', 'warningLag'],
    [config.criticalLag, '#d62828', 'criticalLag'],
  ] as const) {
    parts.push(
      `<line x1="${LEFT}" x2="${WIDTH - RIGHT}" y1="${n1(a.y(mark))}" y2="${n1(a.y(mark))}" stroke="${color}" stroke-dasharray="6 4"/>`,
      `<text x="${WIDTH - RIGHT - 4}" y="${n1(a.y(mark) - 4)}" class="mark" fill="${color}" text-anchor="end">${name} ${mark}</text>`,
    );
  }
  for (let p = 0; p < config.partitions; p++) {
    const points = t.lag.map(
      (r) => [r.t, r.partitions.find((x) => x.partition === p)?.lag ?? 0] as const,
    );
    parts.push(
      polyline(
        points,
        a,
        `stroke="${PARTITION_COLORS[p % PARTITION_COLORS.length]}" stroke-width="1.2" stroke-opacity="0.85"`,
      ),
    );
  }
  parts.push(
    polyline(
      t.lag.map((r) => [r.t, r.total] as const),
      a,
      `stroke="${LAG_COLOR}" stroke-width="2.6" class="total-lag"`,
    ),
  );
  parts.push(
    `<rect x="${LEFT}" y="${top}" width="${PLOT}" height="${height}" fill="none" stroke="#999"/>`,
  );
  parts.push(
    `<text x="12" y="${top + height / 2}" class="axis" transform="rotate(-90 12 ${top + height / 2})" text-anchor="middle">lag (messages)</text>`,
  );

  // Swimlanes: partitions paused (by reason), circuit, lag status, downstream.
  const laneTop = top + height + 14;
  const laneH = 12;
  const lanes: {
    label: string;
    intervals: { start: number; end: number; fill: string; title: string }[];
  }[] = [];
  for (let p = 0; p < config.partitions; p++) {
    lanes.push({
      label: `p${p} paused`,
      intervals: t.intervals
        .filter((i) => i.kind === 'paused' && i.partition === p)
        .map((i) => ({ ...i, fill: REASON_COLORS[i.label] ?? '#888', title: i.label })),
    });
  }
  lanes.push({
    label: 'circuit',
    intervals: t.intervals
      .filter((i) => i.kind === 'circuit' && i.label !== 'closed')
      .map((i) => ({ ...i, fill: i.label === 'open' ? '#e63946' : '#f4a261', title: i.label })),
  });
  lanes.push({
    label: 'lag status',
    intervals: t.intervals
      .filter((i) => i.kind === 'lag-status' && i.label !== 'ok')
      .map((i) => ({ ...i, fill: i.label === 'critical' ? '#d62828' : '#f2c14e', title: i.label })),
  });
  lanes.push({
    label: 'downstream',
    intervals: t.intervals
      .filter((i) => i.kind === 'outage')
      .map((i) => ({ ...i, fill: '#6c757d', title: 'down' })),
  });
  lanes.forEach((lane, i) => {
    const y = laneTop + i * (laneH + 3);
    parts.push(
      `<text x="${LEFT - 6}" y="${y + 10}" class="lane" text-anchor="end">${esc(lane.label)}</text>`,
      `<rect x="${LEFT}" y="${y}" width="${PLOT}" height="${laneH}" fill="#f1f3f5"/>`,
    );
    for (const iv of lane.intervals) {
      const x = a.x(iv.start);
      parts.push(
        `<rect x="${n1(x)}" y="${y}" width="${n1(Math.max(1, a.x(iv.end) - x))}" height="${laneH}" fill="${iv.fill}"><title>${esc(iv.title)} ${n1(iv.start)}–${n1(iv.end)} s</title></rect>`,
      );
    }
  });
  const axisY = laneTop + lanes.length * (laneH + 3) + 2;
  parts.push(timeAxis(a, axisY));
  const total = axisY + 24;
  return svg(total, parts.join(''), 'lag-chart');
}

function rateChart(input: ReportInput, duration: number): string {
  const { timeline: t } = input;
  const top = 10;
  const height = 150;
  const peak = Math.max(10, ...t.ticks.map((x) => Math.max(x.produceRate, x.consumeRate)));
  const a = new Axis(duration, top, height, niceStep(peak) * Math.ceil(peak / niceStep(peak)));
  const steps = t.intervals.filter((i) => i.kind === 'step');
  const parts = [stepBands(a, steps, false), valueAxis(a)];
  parts.push(
    polyline(
      t.ticks.map((x) => [x.t, x.produceRate] as const),
      a,
      'stroke="#457b9d" stroke-width="2"',
    ),
  );
  parts.push(
    polyline(
      t.ticks.map((x) => [x.t, x.consumeRate] as const),
      a,
      'stroke="#2a9d8f" stroke-width="2"',
    ),
  );
  parts.push(
    `<rect x="${LEFT}" y="${top}" width="${PLOT}" height="${height}" fill="none" stroke="#999"/>`,
  );
  parts.push(
    `<text x="12" y="${top + height / 2}" class="axis" transform="rotate(-90 12 ${top + height / 2})" text-anchor="middle">msg/s</text>`,
  );
  parts.push(timeAxis(a, top + height + 2));
  return svg(top + height + 26, parts.join(''), 'rate-chart');
}

function inFlightChart(input: ReportInput, duration: number): string {
  const { timeline: t } = input;
  const top = 10;
  const height = 110;
  const peak = Math.max(10, ...t.ticks.map((x) => Math.max(x.inFlight, x.maxInFlight)));
  const a = new Axis(duration, top, height, niceStep(peak) * Math.ceil(peak / niceStep(peak)));
  const steps = t.intervals.filter((i) => i.kind === 'step');
  const parts = [stepBands(a, steps, false), valueAxis(a)];
  parts.push(
    polyline(
      t.ticks.map((x) => [x.t, x.maxInFlight] as const),
      a,
      'stroke="#adb5bd" stroke-width="1.5" stroke-dasharray="4 3"',
    ),
  );
  parts.push(
    polyline(
      t.ticks.map((x) => [x.t, x.inFlight] as const),
      a,
      'stroke="#e76f51" stroke-width="2"',
    ),
  );
  parts.push(
    polyline(
      t.ticks.map((x) => [x.t, x.activeHandlers] as const),
      a,
      'stroke="#6a4c93" stroke-width="1.5"',
    ),
  );
  parts.push(
    `<rect x="${LEFT}" y="${top}" width="${PLOT}" height="${height}" fill="none" stroke="#999"/>`,
  );
  parts.push(
    `<text x="12" y="${top + height / 2}" class="axis" transform="rotate(-90 12 ${top + height / 2})" text-anchor="middle">messages</text>`,
  );
  parts.push(timeAxis(a, top + height + 2));
  return svg(top + height + 26, parts.join(''), 'inflight-chart');
}

function svg(height: number, body: string, id: string): string {
  return (
    `<svg id="${id}" xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" role="img">` +
    `<defs><pattern id="hatch" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">` +
    `<rect width="8" height="8" fill="#6c757d" fill-opacity="0.06"/><line x1="0" y1="0" x2="0" y2="8" stroke="#6c757d" stroke-opacity="0.35" stroke-width="3"/></pattern></defs>` +
    body +
    '</svg>'
  );
}

function legend(items: readonly (readonly [string, string, 'line' | 'box'])[]): string {
  return `<div class="legend">${items
    .map(
      ([label, color, shape]) =>
        `<span><i class="${shape}" style="background:${color}"></i>${esc(label)}</span>`,
    )
    .join('')}</div>`;
}

export function renderReport(input: ReportInput): string {
  const { config, summary: s, timeline: t } = input;
  const duration = Math.max(1, s.durationSeconds);
  const reasons = [...new Set(t.intervals.filter((i) => i.kind === 'paused').map((i) => i.label))];
  const figures: [string, string][] = [
    ['produced', String(s.produced)],
    ['handled', String(s.handled)],
    ['dead-lettered', `${s.deadLettered} / ${s.poisonProduced} poison`],
    ['duplicates', String(s.duplicates)],
    ['lost', String(s.lost)],
    ['peak lag', String(s.peakLag)],
    [
      'peak in-flight',
      Object.entries(s.peakInFlight)
        .filter(([, n]) => n > 0)
        .map(([m, n]) => `${n} (${m})`)
        .join(', ') || '0',
    ],
    ['time to drain', s.drain?.seconds == null ? '–' : `${s.drain.seconds.toFixed(1)} s`],
    ['circuit open', `${(s.secondsIn.circuit['open'] ?? 0).toFixed(1)} s`],
    ['duration', `${s.durationSeconds.toFixed(0)} s`],
  ];
  const states = (title: string, r: Readonly<Record<string, number>>) =>
    `<tr><th>${esc(title)}</th><td>${
      Object.entries(r)
        .map(([k, v]) => `${esc(k)} ${v.toFixed(1)} s`)
        .join(' · ') || 'none'
    }</td></tr>`;
  const events = t.events
    .filter((e) => e.kind !== 'message.retry' || e.level === 'bad')
    .map(
      (e) =>
        `<tr class="${e.level}"><td>${e.t.toFixed(1)}</td><td>${esc(e.step)}</td><td>${esc(e.kind)}</td><td>${esc(e.text)}</td></tr>`,
    )
    .join('');

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>kafkajs-backpressure demo report</title>
<style>
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212529;margin:24px auto;max-width:1140px;padding:0 12px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px}
.sub{color:#6c757d;margin-bottom:14px}
.figures{display:grid;grid-template-columns:repeat(5,1fr);gap:8px;margin:12px 0}
.figures div{background:#f6f7f9;border-radius:6px;padding:8px 10px}.figures b{display:block;font-size:20px}
.figures span{color:#6c757d;font-size:12px}
.checks{margin:8px 0;padding:0;list-style:none}.checks li{margin:2px 0}.ok{color:#2a9d8f}.fail{color:#d62828}
svg{display:block;margin:4px 0}svg text{font-family:inherit}
.tick{font-size:11px;fill:#6c757d}.axis{font-size:12px;fill:#495057}.step{font-size:12px;fill:#495057;font-weight:600}
.mark{font-size:11px}.lane{font-size:11px;fill:#495057}
.legend{display:flex;flex-wrap:wrap;gap:14px;font-size:12px;color:#495057;margin:2px 0 0 ${LEFT}px}
.legend i{display:inline-block;width:14px;height:10px;margin-right:5px;vertical-align:-1px}.legend i.line{height:3px;vertical-align:3px}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left;vertical-align:top}
tr.bad td{color:#b00020}tr.warn td{color:#8a5a00}tr.good td{color:#1b7f5b}tr.step td{font-weight:600;background:#f6f7f9}
</style></head><body>
<h1>kafkajs-backpressure demo</h1>
<div class="sub">${esc(new Date().toISOString())} · ${config.partitions} partitions · ~${config.workMs} ms downstream work per message ·
baseline ${config.rate} msg/s · burst ${config.burstRate} msg/s · key-ordering concurrency ${config.keyConcurrency} · steps: ${esc(s.steps.join(', '))}${s.interrupted ? ' · <b>interrupted</b>' : ''}</div>
<div class="figures">${figures.map(([k, v]) => `<div><b>${esc(v)}</b><span>${esc(k)}</span></div>`).join('')}</div>
<ul class="checks">${s.checks
    .map(
      (c) =>
        `<li class="${c.ok ? 'ok' : 'fail'}">${c.ok ? '✓' : '✗'} <b>${esc(c.name)}</b> — ${esc(c.detail)}</li>`,
    )
    .join('')}</ul>
<h2>Lag over time (LagMonitor: end offsets minus committed offsets, sampled every second)</h2>
${lagChart(input, duration)}
${legend([
  ['total lag', LAG_COLOR, 'line'],
  ...Array.from(
    { length: config.partitions },
    (_, p) => [`p${p}`, PARTITION_COLORS[p % PARTITION_COLORS.length]!, 'line'] as const,
  ),
  ['circuit open', 'rgba(230,57,70,.35)', 'box'],
  ['circuit half-open', 'rgba(244,162,97,.5)', 'box'],
  ['downstream down', '#ced4da', 'box'],
  ...reasons.map((r) => [`paused: ${r}`, REASON_COLORS[r] ?? '#888', 'box'] as const),
])}
<h2>Produce and consume rates</h2>
${rateChart(input, duration)}
${legend([
  ['produced (acked)', '#457b9d', 'line'],
  ['consumed (handled + dead-lettered)', '#2a9d8f', 'line'],
])}
<h2>In flight</h2>
${inFlightChart(input, duration)}
${legend([
  ['in-flight messages', '#e76f51', 'line'],
  ['maxInFlight', '#adb5bd', 'line'],
  ['handlers running', '#6a4c93', 'line'],
])}
<h2>Time in each state</h2>
<table>${states('lag status', s.secondsIn.lagStatus)}${states('circuit', s.secondsIn.circuit)}${states('paused (any partition)', s.secondsIn.paused)}${states('steps', s.secondsIn.step)}</table>
<h2>Events</h2>
<table><tr><th>s</th><th>step</th><th>event</th><th></th></tr>${events}</table>
</body></html>
`;
}
