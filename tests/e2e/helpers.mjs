// Shared pieces of the e2e tests: the native CLI, the demo server, .npy files and page watchers.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const target = process.env.CARGO_TARGET_DIR ?? path.join(os.homedir(), '.cache/videogpt-web/target');
export const BIN = process.env.VIDEOGPT_BIN ?? path.join(target, 'release/videogpt');
export const ARTIFACTS = process.env.E2E_ARTIFACTS ?? path.join(target, 'e2e-artifacts');
fs.mkdirSync(ARTIFACTS, { recursive: true });

export const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'videogpt-e2e-'));

/** Run the native CLI; returns stdout. */
/** PSNR (dB) of two equal-length byte arrays, as our metrics compute it (the clip as one signal). */
export function psnr(a, b) {
  if (a.length !== b.length) throw new Error(`psnr of ${a.length} and ${b.length} values`);
  let se = 0;
  for (let i = 0; i < a.length; i++) se += (a[i] - b[i]) ** 2;
  return 10 * Math.log10((255 * 255) / Math.max(se / a.length, 1e-10));
}

export function cli(...args) {
  return execFileSync(BIN, args, { cwd: ROOT, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `videogpt serve --port 0` on the repository (or `root`, with `flags` such as `--cors`);
 *  resolves to `{ url, stop }`. */
export function serve(root = '.', flags = []) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, ['serve', '--port', '0', '--root', root, ...flags], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/on (http:\/\/127\.0\.0\.1:\d+\/)/);
      if (m) resolve({ url: m[1], stop: () => child.kill() });
    });
    child.on('exit', (code) => reject(new Error(`videogpt serve exited with ${code}: ${out}`)));
  });
}

/** Write a uint8 .npy of `shape`. */
export function writeNpyU8(file, data, shape) {
  let header = `{'descr': '|u1', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  header += `${' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64)}\n`;
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

/** Read a little-endian integer or uint8 .npy → `{ shape, data }` (data as a plain array). */
export function readNpy(file) {
  const b = fs.readFileSync(file);
  const len = b.readUInt16LE(8);
  const header = b.toString('latin1', 10, 10 + len);
  const descr = header.match(/'descr': '([^']+)'/)[1];
  const shape = header
    .match(/'shape': \(([^)]*)\)/)[1]
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map(Number);
  const body = b.subarray(10 + len);
  const ab = body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength);
  const data = { '<i4': Int32Array, '<i8': BigInt64Array, '|u1': Uint8Array }[descr];
  if (!data) throw new Error(`unexpected dtype ${descr}`);
  return { shape, data: Array.from(new data(ab), Number) };
}

/** Make a video file from a uint8 .npy (T×H×W×3) with ffmpeg. */
export function ffmpegFromNpy(npy, out, codecArgs) {
  const { shape, data } = readNpy(npy);
  const [, h, w] = shape;
  execFileSync('ffmpeg', ['-v', 'error', '-y', '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${w}x${h}`, '-r', '15', '-i', '-', ...codecArgs, out], {
    input: Buffer.from(Uint8Array.from(data)),
  });
  return out;
}

/** Collect console errors, page errors and every request the page makes. */
export function watch(page) {
  const w = { errors: [], requests: [] };
  page.on('console', (m) => {
    if (m.type() === 'error') w.errors.push(m.text());
  });
  page.on('pageerror', (e) => w.errors.push(e.message));
  page.on('request', (r) => w.requests.push(r.url()));
  return w;
}

/** `page.goto(url)`, allowing 2 minutes for the load event (Chromium on SwiftShader on a busy
 *  2-core CI machine can be slow to start) and, if even that runs out, naming the requests that
 *  never finished, so a stalled server or resource shows in the failure. */
export async function goto(page, url, timeout = 120_000) {
  const pending = new Set();
  const add = (r) => pending.add(r);
  const done = (r) => pending.delete(r);
  page.on('request', add);
  page.on('requestfinished', done);
  page.on('requestfailed', done);
  try {
    return await page.goto(url, { timeout });
  } catch (e) {
    e.message += `\nrequests not finished: ${[...pending].map((r) => r.url()).join(', ') || 'none'}`;
    throw e;
  } finally {
    page.off('request', add);
    page.off('requestfinished', done);
    page.off('requestfailed', done);
  }
}

/** Requests that went anywhere but the local server (data: and blob: URLs stay in the page). */
export function offsite(requests, url) {
  return requests.filter((u) => !u.startsWith(url) && !u.startsWith('data:') && !u.startsWith('blob:'));
}

/** Wait for the page to finish its current job; returns the error box's text ('' when none). */
export async function idle(page, what, timeout = 600_000) {
  await page.waitForFunction((w) => document.body.dataset.state !== 'busy' && (window.app?.[w] || !document.getElementById('error').hidden), what, { timeout });
  return page.evaluate(() => (document.getElementById('error').hidden ? '' : document.getElementById('error').textContent));
}

/** A typed array in the page (by expression, awaited) as a Node Uint8Array, through base64. */
export async function pageBytes(page, expr) {
  const b64 = await page.evaluate(async (e) => {
    // biome-ignore lint/security/noGlobalEval: the tests name what to read as an expression in their own page
    const a = await eval(e);
    const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }, expr);
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

/** Tokens `videogpt encode` gives for the frames the page holds in `expr` (a frames object, RGB
 *  bytes or ImageBitmaps). */
export async function cliTokensFor(page, expr, model, device = 'cpu', extra = []) {
  const meta = await page.evaluate((e) => {
    // biome-ignore lint/security/noGlobalEval: the tests name what to read as an expression in their own page
    const f = eval(e);
    return [f.frames, f.height, f.width];
  }, expr);
  const rgb = await pageBytes(page, `app.session.pixels(${expr})`); // the bytes the engine saw
  const stem = path.join(tmp, `frames-${Date.now()}`);
  writeNpyU8(`${stem}.npy`, rgb, [...meta, 3]);
  cli('encode', '--model', model, '--input', `${stem}.npy`, '--output', `${stem}-tokens.npy`, '--device', device, ...extra);
  return { tokens: readNpy(`${stem}-tokens.npy`).data, frames: `${stem}.npy` };
}

/** Check tokens the page made from the frames in `expr` with `videogpt compare-tokens`: equal to
 *  the CLI's CPU encoding, or different only at float32 near-ties. Returns the CLI's verdict. */
export async function checkTokens(page, expr, tokens, latent, model, extra = []) {
  const meta = await page.evaluate((e) => {
    // biome-ignore lint/security/noGlobalEval: the tests name what to read as an expression in their own page
    const f = eval(e);
    return [f.frames, f.height, f.width];
  }, expr);
  const rgb = await pageBytes(page, `app.session.pixels(${expr})`); // the bytes the engine saw
  const stem = path.join(tmp, `check-${Date.now()}`);
  writeNpyU8(`${stem}.npy`, rgb, [...meta, 3]);
  writeNpyI32(`${stem}-tokens.npy`, Int32Array.from(tokens), latent);
  return cli('compare-tokens', '--model', model, '--input', `${stem}.npy`, '--tokens', `${stem}-tokens.npy`, ...extra).trim();
}

function writeNpyI32(file, data, shape) {
  let header = `{'descr': '<i4', 'fortran_order': False, 'shape': (${shape.join(', ')}), }`;
  header += `${' '.repeat((64 - ((10 + header.length + 1) % 64)) % 64)}\n`;
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  fs.writeFileSync(file, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]));
}

/** Count of differing positions. */
export function differing(a, b) {
  let n = Math.abs(a.length - b.length);
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) n++;
  return n;
}

/** The page's JavaScript memory after a full garbage collection, precisely (DevTools protocol:
 *  the V8 heap plus ArrayBuffer backing stores, where typed arrays keep frames). The page's
 *  `performance.memory` is bucketed and cached by Chromium, so two of its samples can differ by
 *  tens of MB with nothing kept. */
export async function heapBytes(page) {
  page.__cdp ??= await page.context().newCDPSession(page);
  const cdp = page.__cdp;
  await cdp.send('HeapProfiler.collectGarbage');
  const u = await cdp.send('Runtime.getHeapUsage');
  return u.usedSize + (u.backingStorageSize ?? 0);
}
