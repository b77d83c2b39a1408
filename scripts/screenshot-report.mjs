#!/usr/bin/env node
// Opens the demo's HTML report in headless Chromium, saves a screenshot, and
// checks that the picture shows the chart drawn with data: enough pixels of
// the total-lag line's colour and of the circuit-open shading. Exit code 1
// when Chromium is missing or the chart is not there.
//
//   node scripts/screenshot-report.mjs [report.html] [out.png] [--size 1180x1320]
//
// Chromium: Debian `apt-get install chromium`; or set CHROMIUM=/path/to/chrome.
// Plain ESM, no dependency: the PNG check decodes the file with node:zlib.

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { inflateSync } from 'node:zlib';

const args = process.argv.slice(2);
const sizeAt = args.indexOf('--size');
const size = sizeAt >= 0 ? args.splice(sizeAt, 2)[1] : '1180x1320';
const [html = 'reports/demo-report.html', png = 'docs/demo-report.png'] = args;
const [width, height] = size.split('x').map(Number);

// The total-lag line (#1d3557) and the circuit-open band (#e63946 at 18 % on white).
const LAG_LINE = [0x1d, 0x35, 0x57];
const CIRCUIT_BAND = [0xfb, 0xdf, 0xe1];

function findChromium() {
  const candidates = [process.env.CHROMIUM, 'chromium', 'chromium-browser', 'google-chrome'];
  for (const c of candidates) {
    if (!c) continue;
    const found = spawnSync('sh', ['-c', `command -v "${c}"`], { encoding: 'utf8' });
    if (found.status === 0) return found.stdout.trim();
  }
  return undefined;
}

function run(cmd, argv, timeoutMs) {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output });
    });
  });
}

/** Decodes an 8-bit, non-interlaced RGB or RGBA PNG into { width, height, channels, pixels }. */
export function decodePng(buffer) {
  const signature = buffer.subarray(0, 8).toString('hex');
  if (signature !== '89504e470d0a1a0a') throw new Error('not a PNG');
  let offset = 8;
  let header;
  const idat = [];
  while (offset < buffer.length) {
    const length = buffer.readUInt32BE(offset);
    const type = buffer.toString('latin1', offset + 4, offset + 8);
    const data = buffer.subarray(offset + 8, offset + 8 + length);
    if (type === 'IHDR') {
      header = {
        width: data.readUInt32BE(0),
        height: data.readUInt32BE(4),
        depth: data[8],
        colorType: data[9],
        interlace: data[12],
      };
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    offset += 12 + length;
  }
  if (
    !header ||
    header.depth !== 8 ||
    header.interlace !== 0 ||
    ![2, 6].includes(header.colorType)
  ) {
    throw new Error(`unsupported PNG layout: ${JSON.stringify(header)}`);
  }
  const channels = header.colorType === 6 ? 4 : 3;
  const stride = header.width * channels;
  const raw = inflateSync(Buffer.concat(idat));
  const pixels = Buffer.alloc(stride * header.height);
  for (let y = 0; y < header.height; y++) {
    const filter = raw[y * (stride + 1)];
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const left = x >= channels ? pixels[y * stride + x - channels] : 0;
      const up = y > 0 ? pixels[(y - 1) * stride + x] : 0;
      const upLeft = y > 0 && x >= channels ? pixels[(y - 1) * stride + x - channels] : 0;
      let value = line[x];
      if (filter === 1) value += left;
      else if (filter === 2) value += up;
      else if (filter === 3) value += (left + up) >> 1;
      else if (filter === 4) {
        const p = left + up - upLeft;
        const pa = Math.abs(p - left);
        const pb = Math.abs(p - up);
        const pc = Math.abs(p - upLeft);
        value += pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      }
      pixels[y * stride + x] = value & 0xff;
    }
  }
  return { width: header.width, height: header.height, channels, pixels };
}

function countNear(image, [r, g, b], tolerance) {
  let count = 0;
  const { pixels, channels } = image;
  for (let i = 0; i < pixels.length; i += channels) {
    if (
      Math.abs(pixels[i] - r) <= tolerance &&
      Math.abs(pixels[i + 1] - g) <= tolerance &&
      Math.abs(pixels[i + 2] - b) <= tolerance
    ) {
      count += 1;
    }
  }
  return count;
}

async function main() {
  const htmlPath = resolve(html);
  const pngPath = resolve(png);
  if (!existsSync(htmlPath)) {
    process.stderr.write(
      `${htmlPath} not found: run \`npm run demo\` first (it writes the report)\n`,
    );
    return 1;
  }
  const chromium = findChromium();
  if (!chromium) {
    process.stderr.write(
      'Chromium not found: `apt-get install chromium` (Debian), or set CHROMIUM=/path/to/chrome\n',
    );
    return 1;
  }
  mkdirSync(dirname(pngPath), { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'bp-chromium-'));
  try {
    const { code, output } = await run(
      chromium,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--hide-scrollbars',
        '--force-device-scale-factor=1',
        `--user-data-dir=${profile}`,
        `--screenshot=${pngPath}`,
        `--window-size=${width},${height}`,
        pathToFileURL(htmlPath).href,
      ],
      60_000,
    );
    if (code !== 0 || !existsSync(pngPath)) {
      process.stderr.write(`chromium failed (exit ${code}):\n${output}\n`);
      return 1;
    }
  } finally {
    rmSync(profile, { recursive: true, force: true });
  }

  const image = decodePng(readFileSync(pngPath));
  const line = countNear(image, LAG_LINE, 24);
  const band = countNear(image, CIRCUIT_BAND, 10);
  process.stdout.write(
    `${pngPath}: ${image.width}x${image.height}, ${line} px of the lag line, ${band} px of circuit-open shading\n`,
  );
  // A drawn polyline over ~1000 px of width at 2.6 px is thousands of pixels;
  // an empty chart has none. The circuit band only exists if the outage ran.
  if (line < 800) {
    process.stderr.write(
      'the lag line is not in the screenshot: the chart did not render with data\n',
    );
    return 1;
  }
  const report = readFileSync(htmlPath, 'utf8');
  if (report.includes('fill-opacity="0.18"') && band < 500) {
    process.stderr.write(
      'the report has a circuit-open interval but the screenshot shows no shading\n',
    );
    return 1;
  }
  return 0;
}

process.exitCode = await main();
