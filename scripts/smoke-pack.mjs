#!/usr/bin/env node
// Packaging smoke test: installs the tarball `npm pack` would publish into a
// throwaway project and loads it from ESM and from CommonJS, the way users
// will. Catches what type checks and unit tests cannot: files missing from
// "files", a broken "exports" map, a CJS build that require()s an ESM-only
// dependency, or the two builds drifting apart.
//
// Expects `npm run build` to have produced dist/ (npm run check:package does).

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const NAME = 'kafkajs-backpressure';
// The peer the package is written against; installing it explicitly keeps
// the check independent of npm's peer auto-install behaviour.
const KAFKAJS = 'kafkajs@2.2.4';

function fail(message) {
  process.stderr.write(`smoke: FAILED: ${message}\n`);
  process.exitCode = 1;
}

// npm on Windows is npm.cmd; shell-free execFile needs the exact name.
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function run(cmd, args, cwd) {
  try {
    return execFileSync(cmd, args, {
      cwd,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      // npm install from the registry can be slow, but must never hang CI.
      timeout: 5 * 60_000,
      env: { ...process.env, npm_config_update_notifier: 'false' },
    });
  } catch (err) {
    const output = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim();
    throw new Error(`\`${cmd} ${args.join(' ')}\` failed in ${cwd}:\n${output || err.message}`);
  }
}

async function main() {
  const distEsm = join(ROOT, 'dist', 'index.js');
  if (!existsSync(distEsm) || !existsSync(join(ROOT, 'dist', 'index.cjs'))) {
    throw new Error('dist/index.js or dist/index.cjs is missing; run `npm run build` first');
  }

  // The expected API is whatever the build exports at runtime (type-only
  // exports vanish), so the list never goes stale as the API grows.
  const expected = Object.keys(await import(pathToFileURL(distEsm).href))
    .filter((k) => k !== 'default')
    .sort();
  if (expected.length === 0) throw new Error('dist/index.js exports nothing');

  const work = mkdtempSync(join(tmpdir(), 'kafkajs-bp-smoke-'));
  try {
    // --json prints an array with the tarball's file name; notices go to stderr.
    const packJson = run(NPM, ['pack', '--json', '--pack-destination', work], ROOT);
    const packed = JSON.parse(packJson.slice(packJson.indexOf('[')));
    const tarball = join(work, packed[0].filename);
    if (!existsSync(tarball)) throw new Error(`npm pack did not produce ${tarball}`);

    const project = join(work, 'project');
    mkdirSync(project);
    writeFileSync(
      join(project, 'package.json'),
      `${JSON.stringify({ name: 'smoke', version: '0.0.0', private: true }, null, 2)}\n`,
    );
    run(
      NPM,
      [
        'install',
        tarball,
        KAFKAJS,
        '--no-audit',
        '--no-fund',
        '--ignore-scripts',
        '--loglevel=error',
      ],
      project,
    );

    // A static named import fails at link time if any name is missing, which
    // is stricter than checking properties on a namespace object.
    writeFileSync(
      join(project, 'esm.mjs'),
      `import { ${expected.join(', ')} } from '${NAME}';
import * as ns from '${NAME}';
const values = { ${expected.join(', ')} };
const missing = Object.entries(values).filter(([, v]) => v === undefined).map(([k]) => k);
if (missing.length) throw new Error('undefined ESM exports: ' + missing.join(', '));
const resolved = import.meta.resolve('${NAME}');
if (!resolved.includes('/node_modules/${NAME}/')) throw new Error('resolved outside node_modules: ' + resolved);
// The OpenTelemetry subpath resolves (loading it needs the optional @opentelemetry/api).
if (!import.meta.resolve('${NAME}/otel').endsWith('/dist/otel.js')) throw new Error('${NAME}/otel did not resolve to dist/otel.js');
console.log(JSON.stringify(Object.keys(ns).filter((k) => k !== 'default').sort()));
`,
    );
    writeFileSync(
      join(project, 'cjs.cjs'),
      `const api = require('${NAME}');
const expected = ${JSON.stringify(expected)};
const missing = expected.filter((k) => api[k] === undefined);
if (missing.length) throw new Error('undefined CJS exports: ' + missing.join(', '));
const resolved = require.resolve('${NAME}');
if (!resolved.endsWith('.cjs') || !resolved.includes('/node_modules/${NAME}/')) {
  throw new Error('require() resolved to ' + resolved);
}
if (!require.resolve('${NAME}/otel').endsWith('/dist/otel.cjs')) throw new Error('${NAME}/otel did not resolve to dist/otel.cjs');
console.log(JSON.stringify(Object.keys(api).filter((k) => k !== 'default').sort()));
`,
    );

    // prom-client is an optional peer: it is not installed in the project,
    // so registerMetrics must fail with a typed error that says what to do,
    // and work when the module is handed in (here: this repository's copy).
    if (existsSync(join(project, 'node_modules', 'prom-client'))) {
      throw new Error('prom-client was installed although it is an optional peer');
    }
    const promClient = createRequire(join(ROOT, 'package.json')).resolve('prom-client');
    const metricsCheck = (load) => `
const { RateLimitedProducer, registerMetrics, isBackpressureError } = ${load(NAME)};
const producer = new RateLimitedProducer({ send: async () => [], disconnect: async () => {} });
const registry0 = { getSingleMetric() {}, removeSingleMetric() {} };
let error;
try { registerMetrics(registry0, { producers: [producer] }); } catch (e) { error = e; }
if (!isBackpressureError(error) || error.code !== 'ERR_CONFIG' || !/npm install prom-client/.test(error.message)) {
  throw new Error('without prom-client registerMetrics should throw ERR_CONFIG, got ' + error);
}
const client = ${load(promClient)};
const registry = new client.Registry();
const registration = registerMetrics(registry, { producers: { dlq: producer } }, { client });
const text = await registry.metrics();
if (!text.includes('kafka_producer_throttle_state{producer="dlq"} 0')) throw new Error('unexpected scrape:\\n' + text);
registration.unregister();
if ((await registry.metrics()).trim() !== '') throw new Error('unregister() left metrics behind');
await producer.close();
console.log('ok');
`;
    writeFileSync(
      join(project, 'metrics.mjs'),
      metricsCheck(
        (id) => `await import(${JSON.stringify(id.startsWith('/') ? pathToFileURL(id).href : id)})`,
      ),
    );
    writeFileSync(
      join(project, 'metrics.cjs'),
      `(async () => {${metricsCheck((id) => `require(${JSON.stringify(id)})`)}})().catch((e) => { console.error(e); process.exit(1); });`,
    );
    for (const file of ['metrics.mjs', 'metrics.cjs']) {
      const out = run(process.execPath, [file], project).trim();
      if (out !== 'ok') throw new Error(`${file}: ${out}`);
    }

    const esmNames = JSON.parse(run(process.execPath, ['esm.mjs'], project));
    const cjsNames = JSON.parse(run(process.execPath, ['cjs.cjs'], project));
    const same = (a, b) => a.length === b.length && a.every((k, i) => k === b[i]);
    if (!same(esmNames, expected)) {
      throw new Error(
        `installed ESM exports differ from dist/index.js:\n  got      ${esmNames}\n  expected ${expected}`,
      );
    }
    if (!same(cjsNames, expected)) {
      throw new Error(`CJS exports differ from ESM:\n  cjs ${cjsNames}\n  esm ${expected}`);
    }
    process.stdout.write(
      `smoke: esm ok (${esmNames.length} exports), cjs ok (${cjsNames.length} exports), registerMetrics ok without prom-client installed (typed error) and with the module passed in\n`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => fail(err?.message ?? String(err)));
