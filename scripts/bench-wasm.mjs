// The wasm CPU path in headless Chromium (no WebGPU; --webgpu: SwiftShader's WebGPU instead): the
// bundled clip reconstructed with a tokenizer (natural-64 unless --model ID) at 64×64 and 128×128,
// live mode fed by a 30 fps camera, one sample of mmnist-prior and a continuation of the clip
// with natural-64-prior (--priors-only: just those two), a Moving MNIST test clip's tokens coded
// under mmnist-prior and decoded (.vgt version 2; --coded-only: just that), median of N runs after a warm-up,
// through the JS API. Prints a markdown row per measurement; docs/performance.md keeps
// the table. Build the engine first (scalar: bash scripts/build-web.sh; SIMD: see the doc).
//   node scripts/bench-wasm.mjs [--runs 5] [--label scalar] [--webgpu] [--live-only] [--model ID] [--no-sample] [--priors-only] [--coded-only]
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import { launch } from '../tests/e2e/browser.mjs';
import { serve } from '../tests/e2e/helpers.mjs';

const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const runs = Number(arg('runs', 5));
const label = arg('label', 'build');
const device = process.argv.includes('--webgpu') ? 'webgpu' : 'cpu';
// --live-only: the live rows alone (on SwiftShader a 16-frame reconstruction takes most of a minute)
const liveOnly = process.argv.includes('--live-only');
const model = `models/${arg('model', 'natural-64')}.safetensors`;
const noSample = process.argv.includes('--no-sample');
const codedOnly = process.argv.includes('--coded-only');
const priorsOnly = process.argv.includes('--priors-only') || codedOnly;
const server = await serve();
const browser = await launch({ webgpu: device === 'webgpu' });
try {
  const page = await browser.newPage();
  await page.goto(`${server.url}?device=${device}`);
  await page.waitForFunction(() => window.app?.session, null, { timeout: 180_000 });
  const result = await page.evaluate(
    async ([n, device, liveOnly, model, noSample, priorsOnly, codedOnly]) => {
      const { load } = await import('./www/videogpt.js');
      const { decodeVideoFile } = await import('./www/media.js');
      const file = await (await fetch('www/media/calais-1906.mp4')).arrayBuffer();
      const frames = await decodeVideoFile(file, { maxFrames: 16 });
      const median = (v) => v.sort((a, b) => a - b)[Math.floor(v.length / 2)];
      const out = {};
      for (const resolution of liveOnly || priorsOnly ? [] : [64, 128]) {
        const s = await load({ model, device, resolution });
        const enc = [],
          dec = [];
        for (let i = 0; i <= n; i++) {
          const r = await s.reconstruct(frames);
          if (i > 0) {
            enc.push(r.encodeMs ?? r.totalMs);
            dec.push(r.decodeMs ?? 0);
          }
        }
        out[`reconstruct ${resolution}×${resolution}`] = { encode: median(enc), decode: median(dec) };
        s.close();
      }
      // live mode fed by a 30 fps camera (the clip's frames, looped) for 6 s: frames out per second
      for (const resolution of priorsOnly ? [] : [64, 128]) {
        const s = await load({ model, device, resolution });
        const n = frames.height * frames.width * 3;
        const canvas = new OffscreenCanvas(frames.width, frames.height);
        const ctx = canvas.getContext('2d');
        let i = 0;
        const t0 = performance.now();
        const camera = {
          async next() {
            if (performance.now() - t0 > 6000) return { done: true };
            await new Promise((r) => setTimeout(r, Math.max(0, t0 + i * 33.3 - performance.now())));
            const rgb = frames.data.subarray((i % frames.frames) * n, ((i % frames.frames) + 1) * n);
            const rgba = new Uint8ClampedArray(frames.height * frames.width * 4);
            for (let p = 0, q = 0; p < rgb.length; p += 3, q += 4) {
              rgba[q] = rgb[p];
              rgba[q + 1] = rgb[p + 1];
              rgba[q + 2] = rgb[p + 2];
              rgba[q + 3] = 255;
            }
            ctx.putImageData(new ImageData(rgba, frames.width, frames.height), 0, 0);
            i++;
            return { value: { frame: canvas, width: frames.width, height: frames.height, close() {} } };
          },
        };
        const h = await s.live(camera);
        await h.done;
        await new Promise((r) => setTimeout(r, 1000));
        const st = h.stats;
        // a chunk is the temporal stride's frames (4 for natural-64, 2 for stride 2,4,4)
        const chunk = s.model.downsample[0];
        out[`live ${resolution}×${resolution}, 30 fps camera`] = { fps: (st.chunks * chunk) / 6, dropped: st.framesDropped, of: st.framesIn };
        s.close();
      }
      if (liveOnly || noSample) return out;
      // Moving MNIST test clip 0 (tests/fixtures/mmnist_test0.npy, uint8 16×64×64×3): its tokens
      // coded under mmnist-prior (codeVgt) and decoded back to frames (decodeVgt), on the CPU path
      const npy = new Uint8Array(await (await fetch('tests/fixtures/mmnist_test0.npy')).arrayBuffer());
      const digits = { data: npy.subarray(10 + (npy[8] | (npy[9] << 8))), frames: 16, height: 64, width: 64 };
      const m = await load({ model: 'models/mmnist.safetensors', prior: 'models/mmnist-prior.safetensors', device: 'cpu' });
      const plain = await m.encodeVgt(digits);
      const [code, decode] = [[], []];
      let coded;
      for (let i = 0; i <= n; i++) {
        const t0 = performance.now();
        coded = await m.codeVgt(plain);
        const t1 = performance.now();
        await m.decodeVgt(coded);
        if (i > 0) {
          code.push(t1 - t0);
          decode.push(performance.now() - t1);
        }
      }
      out[`code a Moving MNIST test clip under mmnist-prior (1,024 tokens: ${coded.length} bytes, bit-packed ${plain.length})`] = { total: median(code) };
      out['decode it (.vgt version 2: tokens under the prior, then frames)'] = { total: median(decode) };
      m.close();
      if (codedOnly) return out;
      const p = await load({ prior: 'models/mmnist-prior.safetensors', device: 'cpu' });
      const times = [];
      for (let i = 0; i <= n; i++) {
        const t0 = performance.now();
        await p.sample({ seed: i, temperature: 0.8, topK: 8 });
        if (i > 0) times.push(performance.now() - t0);
      }
      out['sample mmnist-prior (1,024 tokens, decoded)'] = { total: median(times) };
      p.close();
      // continuing the clip with the natural prior: its first latent frame kept, 768 tokens sampled
      const natural = await load({ prior: 'models/natural-64-prior.safetensors', device: 'cpu' });
      const cont = [];
      for (let i = 0; i <= n; i++) {
        const t0 = performance.now();
        await natural.continue(frames, { prefixFrames: 1, seed: i, temperature: 0.9, topK: 100 });
        if (i > 0) cont.push(performance.now() - t0);
      }
      out['continue the clip, natural-64-prior (768 tokens sampled, encoded and decoded)'] = { total: median(cont) };
      natural.close();
      return out;
    },
    [runs, device, liveOnly, model, noSample, priorsOnly, codedOnly],
  );
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const chromium = execFileSync('chromium', ['--version'], { encoding: 'utf8' }).trim();
  console.log(`${model}: ${chromium}, ${os.cpus().length} cores of ${cpu}; median of ${runs} runs after a warm-up`);
  for (const [what, t] of Object.entries(result)) {
    if (t.fps !== undefined) {
      console.log(`| ${what} | ${label} | ${t.fps.toFixed(1)} frames/s out, ${t.dropped} of ${t.of} frames dropped |`);
      continue;
    }
    const ms = t.total ?? t.encode + t.decode;
    console.log(`| ${what} | ${label} | ${t.encode?.toFixed(0) ?? ''} | ${t.decode?.toFixed(0) ?? ''} | ${ms.toFixed(0)} |`);
  }
} finally {
  await browser.close();
  server.stop();
}
