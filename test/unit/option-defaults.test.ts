/**
 * Every optional public option says its default in its TSDoc (`@default`),
 * where the API reference (TypeDoc) and an editor's hover show it.
 *
 * The walk starts at the interfaces `src/index.ts` exports whose names end in
 * `Options` (the resolved, all-required `Resolved...` shapes aside) and
 * follows each property's type into the interfaces of src/ it names
 * (`thresholds` -> `LagThresholds`, `retry` -> `RetryOptions`, ...). An
 * optional property signature without `@default` is reported; methods are a
 * collaborator's shape (a logger, a producer), not options.
 */
import { join, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');

const COMPILER_OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noEmit: true,
  skipLibCheck: true,
  types: ['node'],
};

/** `Interface.property` for every optional option without `@default`, and the interfaces walked. */
function missingDefaults(
  entry: string,
  host?: ts.CompilerHost,
): { missing: string[]; walked: string[] } {
  const program = ts.createProgram([entry], COMPILER_OPTIONS, host);
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  if (!source) throw new Error(`${entry} is not in the program`);
  const module = checker.getSymbolAtLocation(source);
  if (!module) throw new Error(`${entry} is not a module`);
  const srcDir = resolve(entry, '..');
  const ours = (symbol: ts.Symbol): boolean =>
    (symbol.flags & ts.SymbolFlags.Interface) !== 0 &&
    (symbol.declarations ?? []).some((d) => resolve(d.getSourceFile().fileName).startsWith(srcDir));

  const queue: ts.Symbol[] = [];
  for (const exported of checker.getExportsOfModule(module)) {
    const symbol =
      exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    if (ours(symbol) && /Options$/.test(exported.name) && !/^Resolved/.test(exported.name)) {
      queue.push(symbol);
    }
  }

  const seen = new Set<ts.Symbol>();
  const missing = new Set<string>();
  const walked: string[] = [];
  while (queue.length > 0) {
    const symbol = queue.shift()!;
    if (seen.has(symbol)) continue;
    seen.add(symbol);
    walked.push(symbol.name);
    // Inherited members too (`RateLimitedProducerOptions extends ProducerLimits`),
    // each reported under the interface that declares it.
    for (const property of checker.getPropertiesOfType(checker.getDeclaredTypeOfSymbol(symbol))) {
      const member = property.valueDeclaration;
      if (!member || !ts.isPropertySignature(member) || !member.type) continue;
      const owner = ts.isInterfaceDeclaration(member.parent)
        ? member.parent.name.text
        : symbol.name;
      const name = `${owner}.${property.name}`;
      const hasDefault = ts.getJSDocTags(member).some((tag) => tag.tagName.text === 'default');
      if (member.questionToken && !hasDefault) missing.add(name);
      const type = checker.getNonNullableType(checker.getTypeAtLocation(member.type));
      for (const part of type.isUnion() ? type.types : [type]) {
        const target = part.aliasSymbol ?? part.getSymbol();
        if (target && ours(target)) queue.push(target);
      }
    }
  }
  return { missing: [...missing].sort(), walked: walked.sort() };
}

describe('public options document their defaults', () => {
  it(
    'every optional option reachable from an exported *Options interface has @default',
    { timeout: 60_000 },
    () => {
      const { missing, walked } = missingDefaults(join(ROOT, 'src', 'index.ts'));
      // The walk reaches the option groups of each part (a guard against a
      // walk that silently finds nothing).
      expect(walked).toEqual(
        expect.arrayContaining([
          'BackpressureConsumerOptions',
          'RetryOptions',
          'DeadLetterOptions',
          'CircuitBreakerOptions',
          'LatencyOptions',
          'AdaptiveConcurrencyOptions',
          'ShedOptions',
          'DownstreamLagOptions',
          'CloseOptions',
          'LagMonitorOptions',
          'LagThresholds',
          'RateLimitedProducerOptions',
          'ProducerLagSignal',
          'RegisterMetricsOptions',
        ]),
      );
      expect(missing, 'optional options without @default in their TSDoc').toEqual([]);
    },
  );

  it('reports an optional option without @default', { timeout: 60_000 }, () => {
    // The same walk over a two-file module in memory: one option lacks the tag.
    const files: Record<string, string> = {
      [join(ROOT, 'virtual', 'src', 'index.ts')]:
        "export type { DemoOptions } from './options.js';\n",
      [join(ROOT, 'virtual', 'src', 'options.ts')]: [
        'export interface NestedOptions {',
        '  /** @default 1 */ readonly a?: number;',
        '  /** No tag. */ readonly b?: number;',
        '}',
        'export interface DemoOptions {',
        '  readonly required: string;',
        '  /** @default 5 */ readonly documented?: number;',
        '  /** Said in prose only: 5 by default. */ readonly undocumented?: number;',
        '  /** @default disabled */ readonly nested?: NestedOptions;',
        '}',
      ].join('\n'),
    };
    const host = ts.createCompilerHost(COMPILER_OPTIONS);
    const { getSourceFile, fileExists, readFile, directoryExists } = host;
    const dir = join(ROOT, 'virtual');
    host.directoryExists = (path) => path.startsWith(dir) || directoryExists!.call(host, path);
    host.fileExists = (file) => file in files || fileExists.call(host, file);
    host.readFile = (file) => files[file] ?? readFile.call(host, file);
    host.getSourceFile = (file, language, ...rest) =>
      file in files
        ? ts.createSourceFile(file, files[file]!, language)
        : getSourceFile.call(host, file, language, ...rest);
    const { missing, walked } = missingDefaults(join(ROOT, 'virtual', 'src', 'index.ts'), host);
    expect(walked).toEqual(['DemoOptions', 'NestedOptions']);
    expect(missing).toEqual(['DemoOptions.undocumented', 'NestedOptions.b']);
  });
});
