/**
 * The reference tables of docs/ against the code they describe: every
 * option of an options interface has a row and every row names a real
 * option; where the TSDoc's `@default` is a plain value (a number, a quoted
 * string, a boolean, `Infinity`), the row's default cell shows that value;
 * every consumer event and pause reason has a row. A renamed option, a new
 * event or a changed default then fails here instead of leaving the page
 * quietly wrong.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

interface Row {
  /** The backticked names of the first cell (`a` / `b` gives both). */
  readonly names: readonly string[];
  readonly cells: readonly string[];
}

/** The first table after `heading` in `file` whose header's first cell is `first`. */
function table(file: string, heading: string, first: string): Row[] {
  const lines = readFileSync(join(ROOT, file), 'utf8').split('\n');
  const at = lines.findIndex((line) => line.trim() === heading);
  if (at < 0) throw new Error(`${file}: no heading ${heading}`);
  const start = lines.findIndex(
    (line, i) => i > at && new RegExp(`^\\|\\s*${first}\\s*\\|`).test(line),
  );
  if (start < 0) throw new Error(`${file}: no table with a "${first}" column after ${heading}`);
  const rows: Row[] = [];
  for (let i = start + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    // `\|` inside a cell is an escaped pipe, not a column.
    const cells = lines[i]!.split(/(?<!\\)\|/)
      .slice(1, -1)
      .map((cell) => cell.trim());
    const names = [...(cells[0] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    rows.push({ names, cells });
  }
  return rows;
}

let program: ts.Program;
let checker: ts.TypeChecker;
let exports: Map<string, ts.Symbol>;

beforeAll(() => {
  const entry = join(ROOT, 'src', 'index.ts');
  program = ts.createProgram([entry], {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: ['node'],
  });
  checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry)!)!;
  exports = new Map(
    checker
      .getExportsOfModule(module)
      .map((s) => [s.name, s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s]),
  );
}, 60_000);

function exportedType(name: string): ts.Type {
  const symbol = exports.get(name);
  if (!symbol) throw new Error(`src/index.ts does not export ${name}`);
  return checker.getDeclaredTypeOfSymbol(symbol);
}

/** `@default` of the property at a dotted path (`thresholds.clearRatio`), if it has one. */
function defaultOf(type: ts.Type, path: string): string | undefined {
  let current: ts.Type | undefined = type;
  let property: ts.Symbol | undefined;
  for (const part of path.split('.')) {
    property = current ? checker.getPropertyOfType(current, part) : undefined;
    if (!property?.valueDeclaration) return undefined;
    current = checker.getNonNullableType(checker.getTypeOfSymbol(property));
  }
  const tag = ts
    .getJSDocTags(property!.valueDeclaration!)
    .find((t) => t.tagName.text === 'default');
  return tag ? ts.getTextOfJSDocComment(tag.comment)?.trim() : undefined;
}

/** A `@default` that is one plain value, as the docs would write it; undefined for prose. */
function plainValue(text: string): string | undefined {
  const match = /^(-?[0-9][0-9_]*(?:\.[0-9]+)?|'[^']*'|true|false|Infinity)(?:\s|$)/.exec(text);
  return match ? match[1]!.replaceAll('_', '') : undefined;
}

const OPTION_TABLES = [
  { type: 'BackpressureConsumerOptions', file: 'docs/consumer.md', heading: '## Options' },
  {
    type: 'DownstreamLagOptions',
    file: 'docs/consumer.md',
    heading: '### Upstream pause: backpressure across topics',
  },
  { type: 'RateLimitedProducerOptions', file: 'docs/producer.md', heading: '## Options' },
  { type: 'LagMonitorOptions', file: 'docs/lag-monitor.md', heading: '## Options' },
] as const;

describe('docs tables match the code', () => {
  for (const { type, file, heading } of OPTION_TABLES) {
    it(`${file} "${heading}" lists every ${type} option with its default`, () => {
      const options = exportedType(type);
      const properties = checker.getPropertiesOfType(options).map((p) => p.name);
      const rows = table(file, heading, 'option');
      const names = rows.flatMap((r) => r.names);

      const undocumented = properties.filter(
        (p) => !names.some((n) => n === p || n.startsWith(`${p}.`)),
      );
      expect(undocumented, `${type} options without a row in ${file}`).toEqual([]);
      const unknown = names.filter((n) => !properties.includes(n.split('.')[0]!));
      expect(unknown, `rows of ${file} that are not ${type} options`).toEqual([]);

      const wrong: string[] = [];
      for (const row of rows) {
        for (const name of row.names) {
          const documented = defaultOf(options, name);
          const value = documented === undefined ? undefined : plainValue(documented);
          if (value !== undefined && !(row.cells[1] ?? '').replaceAll('`', '').includes(value)) {
            wrong.push(`${name}: TSDoc @default ${value}, ${file} says ${row.cells[1]}`);
          }
        }
      }
      expect(wrong, `defaults in ${file} that differ from the TSDoc`).toEqual([]);
    });
  }

  it('docs/consumer.md lists every consumer event', () => {
    const events = checker.getPropertiesOfType(exportedType('ConsumerEvents')).map((p) => p.name);
    const names = table('docs/consumer.md', '## Events', 'event').flatMap((r) => r.names);
    expect([...names].sort()).toEqual([...events].sort());
  });

  it('docs/consumer.md lists every pause reason', () => {
    const reason = exportedType('PauseReason');
    const reasons = (reason.isUnion() ? reason.types : [reason]).map((t) =>
      String((t as ts.StringLiteralType).value),
    );
    const names = table('docs/consumer.md', '## Flow control', 'reason').flatMap((r) => r.names);
    expect([...names].sort()).toEqual([...reasons].sort());
  });

  it('a wrong default in a row is caught', () => {
    // The comparison itself, on a row as a page would write it.
    expect(plainValue('5000')).toBe('5000');
    expect(plainValue("'partition'")).toBe("'partition'");
    expect(plainValue('67108864 (64 MiB)')).toBe('67108864');
    expect(plainValue('30_000')).toBe('30000');
    expect(plainValue('min(8, concurrency)')).toBeUndefined();
    expect(plainValue('disabled')).toBeUndefined();
    const options = exportedType('BackpressureConsumerOptions');
    expect(defaultOf(options, 'commitIntervalMs')).toBe('1000');
    expect(defaultOf(options, 'retry.maxAttempts')).toBe('3');
  });
});
