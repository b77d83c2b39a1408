/**
 * The demo's terminal output. On a terminal: event lines scroll above a
 * compact panel that is redrawn in place (plain ANSI: cursor up, clear to the
 * end of the screen). Anywhere else (a pipe, a file, CI): the same event
 * lines plus one status line every two seconds, no escape codes.
 */
import type { LagRound, Tick, Timeline, TimelineEvent } from './timeline.js';

export interface ViewState {
  readonly stepIndex: number;
  readonly stepCount: number;
  readonly topic: string;
  readonly partitions: number;
  readonly deadLettered: number;
  readonly downstreamDown: boolean;
  readonly warningLag: number;
  readonly criticalLag: number;
}

const SPARK = '▁▂▃▄▅▆▇█';
const EIGHTHS = ['', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

export function sparkline(values: readonly number[], max = Math.max(1, ...values)): string {
  return values
    .map((v) => SPARK[Math.min(SPARK.length - 1, Math.round((v / max) * (SPARK.length - 1)))])
    .join('');
}

/** A horizontal bar `width` cells wide, in eighths of a cell. */
export function bar(value: number, max: number, width: number): string {
  const eighths = Math.round((Math.min(value, max) / Math.max(1, max)) * width * 8);
  const full = Math.floor(eighths / 8);
  return ('█'.repeat(full) + EIGHTHS[eighths % 8]!).padEnd(width, ' ');
}

export function clock(seconds: number): string {
  const s = Math.floor(seconds);
  return `${String(Math.floor(s / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

const rate = (n: number): string => `${n.toFixed(1)} msg/s`;

export class View {
  readonly #out: NodeJS.WritableStream & { columns?: number };
  readonly #live: boolean;
  readonly #color: boolean;
  readonly #timeline: Timeline;
  #panelLines = 0;
  #lastPlainAt = Number.NEGATIVE_INFINITY;
  #lastPanel: string[] = [];
  #stopped = false;

  constructor(
    out: NodeJS.WritableStream & { columns?: number },
    timeline: Timeline,
    options: { readonly live: boolean; readonly color: boolean },
  ) {
    this.#out = out;
    this.#timeline = timeline;
    this.#live = options.live;
    this.#color = options.color;
    if (this.#live) this.#out.write('\x1b[?25l'); // hide the cursor while redrawing
  }

  paint(code: number, text: string): string {
    return this.#color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }

  bold = (s: string): string => this.paint(1, s);
  dim = (s: string): string => this.paint(2, s);
  red = (s: string): string => this.paint(31, s);
  green = (s: string): string => this.paint(32, s);
  yellow = (s: string): string => this.paint(33, s);
  cyan = (s: string): string => this.paint(36, s);

  /** One event line, timestamped, above the panel. */
  event(e: TimelineEvent): void {
    const stamp = this.dim(`[${clock(e.t)} ${e.step}]`);
    const text =
      e.level === 'step'
        ? this.bold(this.cyan(e.text))
        : e.level === 'bad'
          ? this.red(e.text)
          : e.level === 'warn'
            ? this.yellow(e.text)
            : e.level === 'good'
              ? this.green(e.text)
              : e.text;
    this.lines([e.level === 'step' ? `\n${stamp} ${text}` : `${stamp} ${text}`]);
  }

  /** Lines printed as they are (a dead letter, the summary). */
  lines(lines: readonly string[]): void {
    if (this.#stopped) {
      this.#out.write(lines.join('\n') + '\n');
      return;
    }
    this.#clearPanel();
    this.#out.write(lines.join('\n') + '\n');
    this.#drawPanel(this.#lastPanel);
  }

  refresh(state: ViewState): void {
    if (this.#stopped) return;
    const tick = this.#timeline.ticks.at(-1);
    if (tick === undefined) return;
    const lag = this.#timeline.lag.at(-1);
    if (this.#live) {
      const panel = this.#panel(state, tick, lag);
      this.#clearPanel();
      this.#drawPanel(panel);
      return;
    }
    if (tick.t - this.#lastPlainAt < 2) return;
    this.#lastPlainAt = tick.t;
    this.#out.write(this.#statusLine(state, tick, lag) + '\n');
  }

  /** Leaves the last panel on screen and gives the cursor back. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#live) {
      this.#panelLines = 0;
      this.#out.write('\x1b[?25h');
    }
  }

  #statusLine(state: ViewState, tick: Tick, lag: LagRound | undefined): string {
    const paused = tick.partitions.filter((p) => p.paused);
    const reasons = [...new Set(paused.flatMap((p) => p.reasons))].join(',');
    return [
      `[${clock(tick.t)} ${tick.step}]`,
      `produce ${tick.produceRate.toFixed(1)}/s`,
      `consume ${tick.consumeRate.toFixed(1)}/s`,
      `lag ${lag === undefined ? '-' : `${lag.total} ${lag.status}`}`,
      `in-flight ${tick.inFlight}/${tick.maxInFlight}`,
      `handlers ${tick.activeHandlers}`,
      `paused ${paused.length}/${state.partitions}${reasons ? ` (${reasons})` : ''}`,
      `circuit ${tick.circuit}`,
      `dlq ${state.deadLettered}`,
    ].join(' | ');
  }

  #panel(state: ViewState, tick: Tick, lag: LagRound | undefined): string[] {
    const width = Math.max(60, Math.min(this.#out.columns ?? 100, 120));
    const head = ` step ${state.stepIndex}/${state.stepCount} · ${tick.step} · ${clock(tick.t)} · ${state.topic} (${state.partitions} partitions) `;
    const lines = [this.dim('─'.repeat(2)) + this.bold(head) + this.dim('─'.repeat(width))];

    const circuit =
      tick.circuit === 'open'
        ? this.red('● open')
        : tick.circuit === 'half-open'
          ? this.yellow('◐ half-open')
          : this.green(`● ${tick.circuit}`);
    lines.push(
      ` produce ${this.bold(rate(tick.produceRate).padStart(11))} ${this.dim(tick.produceLimit > 0 ? `(limit ${tick.produceLimit})` : '(stopped)')}` +
        `   consume ${this.bold(rate(tick.consumeRate).padStart(11))}` +
        `   ${this.dim('ordering')} ${tick.ordering} ${this.dim('· concurrency')} ${tick.concurrency}`,
    );
    lines.push(
      ` in-flight ${String(tick.inFlight).padStart(4)}/${tick.maxInFlight} ${this.cyan(bar(tick.inFlight, tick.maxInFlight, 12))}` +
        ` handlers ${String(tick.activeHandlers).padStart(3)}   circuit ${circuit}` +
        `   DLQ ${state.deadLettered > 0 ? this.yellow(String(state.deadLettered)) : '0'}` +
        `   downstream ${state.downstreamDown ? this.red('DOWN') : this.green('up')}`,
    );

    const history = this.#timeline.lag.slice(-40);
    const status = lag?.status ?? 'ok';
    const statusText =
      status === 'critical'
        ? this.red('CRITICAL')
        : status === 'warning'
          ? this.yellow('warning')
          : this.green('ok');
    const advice =
      lag === undefined
        ? ''
        : `monitor: ${lag.consumersNeeded ?? '?'} consumer(s) needed` +
          `, drain ${lag.timeToDrainSeconds === null ? 'not in sight' : `in ~${Math.round(lag.timeToDrainSeconds)} s`}`;
    lines.push(
      ` lag ${this.bold(String(lag?.total ?? '-').padStart(5))} ${statusText.padEnd(8)}` +
        ` ${this.cyan(
          sparkline(
            history.map((r) => r.total),
            Math.max(state.criticalLag, ...history.map((r) => r.total)),
          ),
        )}` +
        `  ${this.dim(advice)}`,
    );

    const peak = Math.max(10, ...this.#timeline.lag.flatMap((r) => r.partitions.map((p) => p.lag)));
    for (const p of tick.partitions) {
      const lagOf = (r: LagRound) => r.partitions.find((x) => x.partition === p.partition)?.lag;
      const current = lag === undefined ? undefined : lagOf(lag);
      const spark = sparkline(
        history.slice(-20).map((r) => lagOf(r) ?? 0),
        peak,
      );
      const why = p.paused ? this.yellow(`⏸ ${p.reasons.join(', ')}`) : this.dim('fetching');
      lines.push(
        `  p${String(p.partition).padEnd(2)} ${String(current ?? '-').padStart(5)} ${this.cyan(bar(current ?? 0, peak, 16))} ${spark.padEnd(20)}` +
          `  in-flight ${String(p.inFlight).padStart(3)}  ${why}`,
      );
    }
    return lines.map((line) => truncate(line, width));
  }

  #clearPanel(): void {
    if (!this.#live || this.#panelLines === 0) return;
    this.#out.write(`\x1b[${this.#panelLines}F\x1b[J`);
    this.#panelLines = 0;
  }

  #drawPanel(panel: string[]): void {
    this.#lastPanel = panel;
    if (!this.#live || panel.length === 0) return;
    this.#out.write(panel.join('\n') + '\n');
    this.#panelLines = panel.length;
  }
}

/** Cuts a line to `width` visible characters, keeping escape codes intact. */
export function truncate(line: string, width: number): string {
  if (line.replace(ANSI, '').length <= width) return line;
  let visible = 0;
  let out = '';
  for (let i = 0; i < line.length && visible < width;) {
    ANSI.lastIndex = i;
    const match = line.startsWith('\x1b[', i) ? ANSI.exec(line) : null;
    if (match && match.index === i) {
      out += match[0];
      i += match[0].length;
      continue;
    }
    out += line[i];
    visible += 1;
    i += 1;
  }
  return out.includes('\x1b[') ? `${out}\x1b[0m` : out;
}
