// The wasm CPU path in headless Chromium (no WebGPU): the bundled clip reconstructed with
// natural-64 at 64×64 and 128×128, and one sample of mmnist-prior, median of N runs after a
// warm-up, through the JS API. Prints a markdown row per measurement; docs/performance.md keeps
// the table. Build the engine first (scalar: bash scripts/build-web.sh; SIMD: see the doc).
//   node scripts/bench-wasm.mjs [--runs 5] [--label scalar]
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { launch } from '../tests/e2e/browser.mjs';
import { serve } from '../tests/e2e/helpers.mjs';

const arg = (name, fallback) => { const i = process.argv.indexOf(`--${name}`); return i > 0 ? process.argv[i + 1] : fallback; };
const runs = Number(arg('runs', 5));
const label = arg('label', 'build');
const server = await serve();
const browser = await launch({ webgpu: false });
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}?device=cpu`);
  await page.waitForFunction(() => window.app?.session, null, { timeout: 180_000 });
  const result = await page.evaluate(async (n) => {
    const { load } = await import('./www/videogpt.js');
    const { decodeVideoFile } = await import('./www/media.js');
    const file = await (await fetch('www/media/calais-1906.mp4')).arrayBuffer();
    const frames = await decodeVideoFile(file, { maxFrames: 16 });
    const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
    const out = {};
    for (const resolution of [64, 128]) {
      const s = await load({ model: 'models/natural-64.safetensors', device: 'cpu', resolution });
      const enc = [], dec = [];
      for (let i = 0; i <= n; i++) {
        const r = await s.reconstruct(frames);
        if (i > 0) { enc.push(r.encodeMs); dec.push(r.decodeMs); }
      }
      out[`reconstruct ${resolution}×${resolution}`] = { encode: median(enc), decode: median(dec) };
      s.close();
    }
    const p = await load({ prior: 'models/mmnist-prior.safetensors', device: 'cpu' });
    const times = [];
    for (let i = 0; i <= n; i++) {
      const t0 = performance.now();
      await p.sample({ seed: i, temperature: 0.8, topK: 8 });
      if (i > 0) times.push(performance.now() - t0);
    }
    out['sample mmnist-prior (1,024 tokens, decoded)'] = { total: median(times) };
    p.close();
    return out;
  }, runs);
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const chromium = execFileSync('chromium', ['--version'], { encoding: 'utf8' }).trim();
  console.log(`${chromium}, ${os.cpus().length} cores of ${cpu}; median of ${runs} runs after a warm-up`);
  for (const [what, t] of Object.entries(result)) {
    const ms = t.total ?? t.encode + t.decode;
    console.log(`| ${what} | ${label} | ${t.encode?.toFixed(0) ?? ''} | ${t.decode?.toFixed(0) ?? ''} | ${ms.toFixed(0)} |`);
  }
} finally {
  await browser.close();
  server.stop();
}
