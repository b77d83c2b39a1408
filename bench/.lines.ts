import { readFileSync, readdirSync } from 'node:fs';
import { SourceMap } from 'node:module';
import { fileURLToPath } from 'node:url';
const dir = process.argv[2]!;
const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).map((f) => `${dir}/${f}`);
const file = files.sort((a, b) => readFileSync(b, 'utf8').length - readFileSync(a, 'utf8').length)[0]!;
const p = JSON.parse(readFileSync(file, 'utf8'));
const counts = new Map<string, number>();
let total = 0;
const maps = new Map<string, SourceMap>();
for (const n of p.nodes) {
  total += n.hitCount ?? 0;
  const url: string = n.callFrame.url;
  if (!url.includes('bench-lib')) continue;
  let m = maps.get(url);
  if (!m) { m = new SourceMap(JSON.parse(readFileSync(fileURLToPath(url) + '.map', 'utf8'))); maps.set(url, m); }
  for (const pt of n.positionTicks ?? []) {
    const e: any = m.findEntry(pt.line - 1, 0);
    const k = `${(e.originalSource ?? '').replace(/.*\/src\//, 'src/')}:${(e.originalLine ?? 0) + 1} ${n.callFrame.functionName}`;
    counts.set(k, (counts.get(k) ?? 0) + pt.ticks);
  }
}
const rows = [...counts].sort((a, b) => b[1] - a[1]).slice(0, 45);
for (const [k, v] of rows) console.log(((100 * v) / total).toFixed(2).padStart(6), k);
