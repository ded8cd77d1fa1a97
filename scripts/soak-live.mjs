// Live mode for a long time, on the page as a user runs it (the fake camera plays carphone at
// 15 fps): every --every seconds it samples the page's JS memory after a full GC (DevTools: V8
// heap plus ArrayBuffers) and the part of it live mode keeps on purpose (Save's last 10 s, ?receive's last 16), the engine Worker's
// wasm memory and JS heap, the GPU buffers created since start (WebGPU), and the live counters.
// A benchmark, not a test: it prints a markdown table per device and a summary line; the figures
// go into docs/reliability.md. Build the engine first (bash scripts/build-web.sh).
//   node scripts/soak-live.mjs [--seconds 600] [--every 10] [--device cpu|webgpu|both] [--model tiny-untrained]
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { launch } from '../tests/e2e/browser.mjs';
import { serve, ffmpegFromNpy, heapBytes, ROOT, tmp } from '../tests/e2e/helpers.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const seconds = Number(arg('seconds', 600));
const every = Number(arg('every', 10));
const model = arg('model', 'tiny-untrained');
const which = arg('device', 'both');
const devices = which === 'both' ? ['cpu', 'webgpu'] : [which];
const MB = (b) => (b == null ? 'n/a' : (b / 1e6).toFixed(2));

const camera = ffmpegFromNpy(path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), path.join(tmp, 'soak-camera.y4m'), ['-pix_fmt', 'yuv420p']);
const server = await serve();
const cpu =
  execFileSync('lscpu')
    .toString()
    .match(/Model name:\s*(.*)/)?.[1] ?? os.cpus()[0].model;
console.log(`live soak: ${seconds} s per device, model ${model}, fake camera 176×144 at 15 fps; ${os.cpus().length} cores of ${cpu}`);
const summary = [];
for (const device of devices) {
  const browser = await launch({ webcam: camera, webgpu: device === 'webgpu' });
  try {
    const page = await browser.newPage();
    await page.goto(`${server.url}?model=${model}&device=${device}`);
    await page.waitForFunction(() => window.app?.session?.model, null, { timeout: 300_000 });
    await page.click('#live');
    await page.waitForFunction(() => app.live?.stats.chunks >= 1, null, { timeout: 300_000 });
    const sample = async () => ({
      heap: await heapBytes(page),
      ...(await page.evaluate(async () => {
        const worker = await app.session.memory();
        const gpu = await app.session.gpuStats();
        const s = app.live.stats;
        const keptBytes = [...(app.liveRecent ?? []).flatMap((c) => [c.input.data, c.output.data]), ...(app.liveSent ?? []).map((c) => c.frames)].reduce(
          (a, d) => a + d.byteLength,
          0,
        );
        return {
          wasm: worker.wasmBytes,
          workerHeap: worker.jsHeapBytes,
          gpuBuffers: gpu?.buffersCreated ?? null,
          framesIn: s.framesIn,
          dropped: s.framesDropped,
          chunks: s.chunks,
          fpsIn: s.fpsIn,
          fpsOut: s.fpsOut,
          latencyMs: s.latencyMs,
          kept: (app.liveRecent ?? []).length,
          keptBytes,
        };
      })),
    });
    const rows = [];
    const started = Date.now();
    for (;;) {
      const r = { t: Math.round((Date.now() - started) / 1000), ...(await sample()) };
      rows.push(r);
      process.stderr.write(`${device} ${r.t} s: heap ${MB(r.heap)} MB, wasm ${MB(r.wasm)} MB, chunks ${r.chunks}, dropped ${r.dropped}/${r.framesIn}\n`);
      if (r.t >= seconds) break;
      await page.waitForTimeout(every * 1000);
    }
    await page.click('#live');
    console.log(`\n${device === 'cpu' ? 'wasm CPU path' : 'WebGPU (SwiftShader)'}:\n`);
    console.log(
      '| s | page JS memory (MB, after GC) | of it kept on purpose (MB) | Worker heap (MB) | wasm memory (MB) | GPU buffers created | frames in | dropped | chunks | fps in / out | latency (ms) | chunks kept for "Save" |',
    );
    console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|');
    for (const r of rows) {
      console.log(
        `| ${r.t} | ${MB(r.heap)} | ${MB(r.keptBytes)} | ${MB(r.workerHeap)} | ${MB(r.wasm)} | ${r.gpuBuffers ?? 'n/a'} | ${r.framesIn} | ${r.dropped} | ${r.chunks} | ${r.fpsIn.toFixed(1)} / ${r.fpsOut.toFixed(1)} | ${r.latencyMs.toFixed(0)} | ${r.kept} |`,
      );
    }
    // growth once the "last 10 s" buffer is full (its chunks are the one thing live mode is meant to keep)
    const full = rows.find((r) => r.chunks > rows[rows.length - 1].kept + 2) ?? rows[Math.floor(rows.length / 2)];
    const last = rows[rows.length - 1];
    const other = (r) => r.heap - r.keptBytes;
    const perMinute = ((other(last) - other(full)) / Math.max(1, last.t - full.t)) * 60;
    summary.push(
      `${device}: ${last.chunks - full.chunks} chunks from ${full.t} s to ${last.t} s; page JS memory ${MB(full.heap)} → ${MB(last.heap)} MB, besides what is kept on purpose ${MB(other(full))} → ${MB(other(last))} MB (${MB(perMinute)} MB/min), wasm ${MB(full.wasm)} → ${MB(last.wasm)} MB, GPU buffers created ${full.gpuBuffers ?? 'n/a'} → ${last.gpuBuffers ?? 'n/a'}`,
    );
  } finally {
    await browser.close();
  }
}
server.stop();
console.log(`\n${summary.join('\n')}`);
