#!/usr/bin/env node
// Type-checks every ```ts block of README.md and docs/*.md against the built
// package, so that the code users copy cannot drift from the API.
//
// Each block becomes its own ES module under reports/snippets/ (inside the
// package, so `import ... from 'kafkajs-backpressure'` resolves by the
// package's own name and "exports" to dist/index.d.ts, as it does for a user),
// and all of them are checked in one strict program. Errors are reported at
// their line in the Markdown file.
//
// A block that is deliberately partial (an options fragment, say) is skipped
// when the line before its fence (blank lines aside) is
//   <!-- check-snippets: skip (why) -->
// Keep such marks rare: a block that compiles is a block that stays true.
//
// It also keeps README.md an entrance: over README_MAX_BYTES it fails, and
// the reference belongs on a page of docs/.
//
// Needs `npm run build` first.

import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'reports', 'snippets');
const SKIP = /^<!--\s*check-snippets:\s*skip\b.*-->$/;
/** 20 KB, as issue 16 set it: what a newcomer reads in ten minutes. */
const README_MAX_BYTES = 20_000;

const readmeBytes = statSync(join(root, 'README.md')).size;
const readmeTooBig = readmeBytes > README_MAX_BYTES;
if (readmeTooBig) {
  console.error(
    `README.md - error: ${readmeBytes} bytes, more than ${README_MAX_BYTES}: ` +
      'move reference material to a page of docs/ and link it.',
  );
}

if (!existsSync(join(root, 'dist', 'index.d.ts'))) {
  console.error('check-snippets: dist/index.d.ts is missing; run `npm run build` first.');
  process.exit(2);
}

const docs = join(root, 'docs');
const sources = [
  'README.md',
  ...readdirSync(docs)
    .filter((name) => name.endsWith('.md'))
    .sort()
    .map((name) => join('docs', name)),
];

/** @type {{ file: string, markdown: string, line: number }[]} */
const blocks = [];
let skipped = 0;
for (const markdown of sources) {
  const lines = readFileSync(join(root, markdown), 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    if (!/^```(ts|typescript)\s*$/.test(lines[i])) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    let before = i - 1;
    while (before >= 0 && lines[before].trim() === '') before--;
    if (before >= 0 && SKIP.test(lines[before].trim())) {
      skipped++;
    } else {
      const name = `${markdown.replaceAll(/[\\/.]/g, '_')}_L${start + 1}.ts`;
      // `export {}` makes a block without imports a module too: top-level
      // await works and blocks do not share one global scope.
      blocks.push({
        file: join(out, name),
        markdown,
        line: start + 1,
        text: `${lines.slice(start, end).join('\n')}\nexport {};\n`,
      });
    }
    i = end;
  }
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
for (const block of blocks) writeFileSync(block.file, block.text);

const options = {
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts'],
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  types: ['node'],
  strict: true,
  noUncheckedIndexedAccess: true,
  noEmit: true,
  skipLibCheck: true,
  // The folder is inside the package: the nearest package.json says "type": "module".
};
const program = ts.createProgram(
  blocks.map((b) => b.file),
  options,
);
const byFile = new Map(blocks.map((b) => [b.file, b]));
const diagnostics = ts.getPreEmitDiagnostics(program);
let errors = 0;
for (const d of diagnostics) {
  const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
  const block = d.file ? byFile.get(d.file.fileName) : undefined;
  if (d.file && block && d.start !== undefined) {
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    console.error(
      `${block.markdown}:${block.line + line}:${character + 1} - error TS${d.code}: ${message}`,
    );
  } else {
    const where = d.file ? relative(root, d.file.fileName) : '(program)';
    console.error(`${where} - error TS${d.code}: ${message}`);
  }
  errors++;
}

console.log(
  `check-snippets: ${blocks.length} ts block(s) from ${sources.length} file(s) type-checked` +
    (skipped ? `, ${skipped} marked partial and skipped` : '') +
    `: ${errors === 0 ? 'no errors' : `${errors} error(s)`}` +
    `; README.md ${readmeBytes} bytes (at most ${README_MAX_BYTES})`,
);
process.exit(errors === 0 && !readmeTooBig ? 0 : 1);
