/**
 * Summarizes a V8 .cpuprofile (from `npm run bench -- --profile`): self and
 * inclusive time per function, by where the code lives (the library's src/,
 * kafkajs, other dependencies, Node internals, GC), restricted to the
 * measured window (first message to last) when the contender recorded one.
 *
 *   tsx bench/profile-summary.ts bench/results/profiles/overhead-lib-partition-r1 [--top 25]
 *
 * (a run's directory, or one .cpuprofile file)
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { SourceMap, type SourceMapPayload, type SourceMapping } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface Profile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({
  options: { top: { type: 'string', default: '25' }, all: { type: 'boolean', default: false } },
  allowPositionals: true,
});
const top = Number(values.top);

/** Bundled library (node_modules/.cache/kafkajs-backpressure-bench-lib/*.js, formerly …-bench/): frames mapped back to src/ through the source map. */
const sourceMaps = new Map<string, SourceMap | null>();
function mapFrame(frame: CallFrame): CallFrame {
  if (!/\/kafkajs-backpressure-bench(-lib)?\//.test(frame.url)) return frame;
  let map = sourceMaps.get(frame.url);
  if (map === undefined) {
    const file = `${fileURLToPath(frame.url)}.map`;
    map = existsSync(file)
      ? new SourceMap(JSON.parse(readFileSync(file, 'utf8')) as SourceMapPayload)
      : null;
    sourceMaps.set(frame.url, map);
  }
  if (!map) return frame;
  const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as Partial<SourceMapping>;
  if (!entry.originalSource) return frame;
  const source = entry.originalSource.startsWith('file:')
    ? entry.originalSource
    : `file://${resolve(dirname(fileURLToPath(frame.url)), entry.originalSource)}`;
  return {
    functionName: frame.functionName,
    url: source,
    lineNumber: entry.originalLine ?? frame.lineNumber,
    columnNumber: entry.originalColumn ?? frame.columnNumber,
  };
}

export function category(url: string, name: string): string {
  if (name === '(garbage collector)') return 'gc';
  if (name === '(idle)') return 'idle';
  if (name === '(program)') return 'program';
  if (/\/src\/[^/]+\.ts$/.test(url) && !url.includes('node_modules')) return 'src';
  const dep = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (dep) return dep[1]!;
  if (url.startsWith('node:') || url === '') return 'node';
  if (url.includes('/bench/')) return 'bench';
  return 'other';
}

function shortUrl(url: string): string {
  const dep = /node_modules\/(.*)$/.exec(url);
  if (dep) return dep[1]!;
  const src = /\/((?:src|bench)\/.*)$/.exec(url);
  if (src) return src[1]!;
  return url.replace(/^file:\/\//, '');
}

/** In a run's directory, the main thread's profile: the one that ran kafkajs. */
function mainProfile(path: string): string {
  if (!statSync(path).isDirectory()) return path;
  const files = readdirSync(path)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(path, f));
  const score = (f: string) => readFileSync(f, 'utf8').split('node_modules/kafkajs/').length;
  const best = files.sort((a, b) => score(b) - score(a))[0];
  if (!best) throw new Error(`no .cpuprofile in ${path}`);
  return best;
}

export function summarize(path: string): string {
  const file = mainProfile(path);
  const profile = JSON.parse(readFileSync(file, 'utf8')) as Profile;
  const windowFile = join(dirname(file), 'window.json');
  let from = Number.NEGATIVE_INFINITY;
  let to = Number.POSITIVE_INFINITY;
  if (existsSync(windowFile) && !values.all) {
    const w = JSON.parse(readFileSync(windowFile, 'utf8')) as { startUs: number; endUs: number };
    from = w.startUs;
    to = w.endUs;
  }
  for (const n of profile.nodes) n.callFrame = mapFrame(n.callFrame);
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const keyOf = (n: ProfileNode) =>
    `${n.callFrame.functionName || '(anonymous)'} ${shortUrl(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  const pathKeys = new Map<number, string[]>();
  const keysFor = (id: number): string[] => {
    const cached = pathKeys.get(id);
    if (cached) return cached;
    const set = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      set.add(keyOf(byId.get(at)!));
    }
    const list = [...set];
    pathKeys.set(id, list);
    return list;
  };
  const self = new Map<string, { us: number; cat: string }>();
  const inclusive = new Map<string, number>();
  const cats = new Map<string, number>();
  let t = profile.startTime;
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    if (t < from || t > to) continue;
    // A sample's weight is the time until the next sample.
    const dt = profile.timeDeltas[i + 1] ?? 0;
    const node = byId.get(profile.samples[i]!)!;
    const cat = category(node.callFrame.url, node.callFrame.functionName);
    if (cat === 'idle') continue;
    total += dt;
    cats.set(cat, (cats.get(cat) ?? 0) + dt);
    const key = keyOf(node);
    const entry = self.get(key) ?? { us: 0, cat };
    entry.us += dt;
    self.set(key, entry);
    for (const k of keysFor(node.id)) inclusive.set(k, (inclusive.get(k) ?? 0) + dt);
  }
  const pct = (us: number) => `${((us / total) * 100).toFixed(1)}%`.padStart(6);
  const out: string[] = [];
  out.push(
    `${file}: ${(total / 1000).toFixed(0)} ms busy` +
      (Number.isFinite(from) ? ' in the measured window' : ' (whole process)'),
  );
  out.push('', 'busy time by origin:');
  for (const [cat, us] of [...cats].sort((a, b) => b[1] - a[1])) out.push(`  ${pct(us)}  ${cat}`);
  const selfList = [...self].sort((a, b) => b[1].us - a[1].us);
  out.push('', `top ${top} self time:`);
  for (const [key, { us, cat }] of selfList.slice(0, top))
    out.push(`  ${pct(us)}  [${cat}] ${key}`);
  for (const want of ['src', 'kafkajs']) {
    out.push('', `top ${top} self time in ${want}:`);
    for (const [key, { us }] of selfList.filter(([, v]) => v.cat === want).slice(0, top))
      out.push(`  ${pct(us)}  ${key}`);
  }
  for (const [label, pattern] of [
    ['src', / src\//],
    ['kafkajs', / kafkajs\//],
  ] as const) {
    out.push('', `top ${top} inclusive time in ${label}:`);
    const incl = [...inclusive]
      .filter(([k]) => pattern.test(k))
      .sort((a, b) => b[1] - a[1])
      .slice(0, top);
    for (const [key, us] of incl) out.push(`  ${pct(us)}  ${key}`);
  }
  return out.join('\n');
}

if (positionals.length === 0) {
  process.stderr.write(
    'usage: tsx bench/profile-summary.ts <run dir | file.cpuprofile>... [--top N] [--all]\n',
  );
  process.exit(2);
}
for (const file of positionals) process.stdout.write(`${summarize(file)}\n\n`);
