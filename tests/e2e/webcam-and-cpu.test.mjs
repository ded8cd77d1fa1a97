// The fake webcam (a y4m played by Chromium as a camera) and the page without WebGPU.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';
import { ARTIFACTS, ROOT, checkTokens, cli, differing, ffmpegFromNpy, goto, heapBytes, idle, pageBytes, psnr, readNpy, serve, tmp, watch } from './helpers.mjs';

const index = JSON.parse(fs.readFileSync(path.join(ROOT, 'models/index.json'), 'utf8'));

const MODEL = 'models/tiny-untrained.safetensors';
const server = await serve();
after(() => server.stop());

async function open(browser, query = '?model=tiny-untrained') {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  const seen = watch(page);
  await goto(page, server.url + query);
  await page.waitForFunction(() => window.app?.session || document.body.dataset.state === 'failed', null, { timeout: 180_000 });
  return { page, seen };
}

test("the webcam records a clip of the fake camera's frames and it reconstructs", async (t) => {
  const y4m = ffmpegFromNpy(path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), path.join(tmp, 'camera.y4m'), ['-pix_fmt', 'yuv420p']);
  const browser = await launch({ webcam: y4m });
  try {
    // WebGPU forced: 'auto' would take the CPU path over SwiftShader, and this test checks the
    // GPU-to-GPU image path
    const { page, seen } = await open(browser, '?model=tiny-untrained&device=webgpu');
    await page.click('#record-webcam');
    assert.equal(await idle(page, 'result'), '');
    const r = await page.evaluate(() => ({
      frames: app.frames.frames,
      size: [app.frames.height, app.frames.width],
      latent: app.result.latent,
      out: app.result.output.frames,
    }));
    assert.equal(r.frames, 16);
    assert.deepEqual(r.latent, [4, 16, 16]);
    assert.equal(r.out, 16);
    assert.ok(r.size[0] >= 64 && r.size[1] >= 64, `camera frames ${r.size}`);
    assert.match(await page.textContent('#status'), /Webcam: reconstructed 16 frames/);
    assert.match(await page.textContent('#stats [data-stat="frames to the engine"]'), /as images/);
    // the frames are the fake camera's clip: each is within camera-path loss (yuv420p, scaling)
    // of one of the clip's 8 frames, scaled by ffmpeg to the camera's size
    // (measured 41.8–42.1 dB for every frame)
    const [h, w] = r.size;
    const source = execFileSync('ffmpeg', ['-v', 'error', '-i', y4m, '-vf', `scale=${w}:${h}`, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], {
      maxBuffer: 1 << 27,
    });
    const captured = await pageBytes(page, 'app.session.pixels(app.frames)');
    const size = h * w * 3;
    assert.equal(captured.length, 16 * size);
    assert.equal(source.length, 8 * size);
    const best = [];
    for (let f = 0; f < 16; f++) {
      const frame = captured.subarray(f * size, (f + 1) * size);
      best.push(Math.max(...Array.from({ length: 8 }, (_, k) => psnr(frame, source.subarray(k * size, (k + 1) * size)))));
    }
    t.diagnostic(`webcam ${w}×${h}: each frame's best match in the camera clip ${best.map((d) => d.toFixed(1)).join(' ')} dB`);
    assert.ok(
      best.every((d) => d > 30),
      `captured frames do not match the camera clip: ${best.map((d) => d.toFixed(1))}`,
    );
    await page.screenshot({ path: path.join(ARTIFACTS, 'webcam.png'), fullPage: true });

    // Continue this clip on the recorded webcam clip (the prior paired with tiny-untrained): the
    // first latent frame is the recording's own tokens, which equal the CLI's encoding of the
    // same frames (up to near-ties); the clip is shown beside the continuation, whose first 4
    // frames are marked as kept
    assert.equal(await page.inputValue('#prior-select'), 'tiny-untrained-prior');
    await page.evaluate(() => {
      window.app.sample = null;
    });
    await page.click('#continue');
    assert.equal(await idle(page, 'sample'), '');
    const c = await page.evaluate(async () => ({
      sampled: Array.from(app.sample.tokens),
      own: Array.from((await app.session.encode(app.frames, { forPrior: true })).tokens),
      kept: app.sample.keptFrames,
      beside: !document.getElementById('continue-source').hidden,
    }));
    assert.deepEqual(c.sampled.slice(0, 256), c.own.slice(0, 256));
    assert.ok(differing(c.sampled.slice(256), c.own.slice(256)) > 100, 'the rest is sampled, not copied');
    assert.match(await checkTokens(page, 'app.frames', c.own, [4, 16, 16], MODEL), /^identical|near-ties/);
    assert.deepEqual([c.kept, c.beside], [4, true]);
    for (const caption of [/kept from the clip/, /sampled by the prior/]) {
      await page.waitForFunction((re) => new RegExp(re).test(document.getElementById('sample-caption').textContent), caption.source, { timeout: 30_000 });
    }
    assert.deepEqual(seen.errors, []);
  } finally {
    await browser.close();
  }
});

test('without WebGPU the page says so and runs on the CPU, with the same tokens as the CLI', async (t) => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, seen } = await open(browser);
    assert.equal(await page.getAttribute('#backend', 'data-backend'), 'cpu');
    assert.equal(await page.isVisible('#fallback'), true);
    assert.match(await page.textContent('#fallback'), /No WebGPU here, so the engine runs on the CPU/);
    await page.click('#use-sample');
    assert.equal(await idle(page, 'result'), '');
    const r = await page.evaluate(() => ({ tokens: Array.from(app.result.tokens), latent: app.result.latent }));
    const verdict = await checkTokens(page, 'app.frames', r.tokens, r.latent, MODEL);
    t.diagnostic(`bundled clip, wasm CPU vs CLI: ${verdict}`);
    assert.match(await page.textContent('#stats [data-stat="frames to the engine"]'), /as RGB bytes/);
    assert.match(verdict, /^identical|near-ties/);
    await page.screenshot({ path: path.join(ARTIFACTS, 'cpu-fallback.png'), fullPage: true });
    assert.deepEqual(seen.errors, []);
  } finally {
    await browser.close();
  }
});

test('the resolution picker runs the same model at 128×128; its tokens match the CLI at --resolution 128 (near-ties aside)', async (t) => {
  const browser = await launch({ webgpu: false });
  try {
    const { page, seen } = await open(browser, '?model=tiny-untrained&resolution=128');
    assert.equal(await page.inputValue('#resolution'), '128');
    assert.match(await page.textContent('#model-info'), /running at 128×128 \(trained at 64×64\)/);
    await page.click('#use-sample');
    assert.equal(await idle(page, 'result'), '');
    const r = await page.evaluate(() => ({
      tokens: Array.from(app.result.tokens),
      latent: app.result.latent,
      size: [app.result.output.height, app.result.output.width],
    }));
    assert.deepEqual(r.size, [128, 128]);
    assert.deepEqual(r.latent, [4, 32, 32]);
    // the CLI on the same frames at the same resolution: the same tokens, or different only at
    // float32 near-ties (the wasm and native SGEMMs round differently)
    const verdict = await checkTokens(page, 'app.frames', r.tokens, r.latent, MODEL, ['--resolution', '128']);
    assert.match(verdict, /^identical|near-ties/);
    assert.match(verdict, / 4096 tokens/);
    t.diagnostic(`bundled clip at 128, wasm CPU vs CLI: ${verdict}`);
    // picking "the model's" goes back to 64×64
    await page.selectOption('#resolution', '');
    await page.waitForFunction(() => /running at 64×64/.test(document.getElementById('model-info').textContent), null, { timeout: 60_000 });
    assert.deepEqual(seen.errors, []);
  } finally {
    await browser.close();
  }
});

test('a panic inside the wasm engine becomes an EngineError, the engine restarts, and the next request works', async () => {
  const browser = await launch({ webgpu: false });
  try {
    // the crash hook is refused without ?test-hooks (the page never sets it)
    const { page: plain } = await open(browser);
    const refused = await plain.evaluate(() =>
      app.session.call('crashForTest').then(
        () => 'answered',
        (e) => e.message,
      ),
    );
    assert.match(refused, /crashForTest is a test hook/);
    const { page } = await open(browser, '?model=tiny-untrained&test-hooks');
    await page.click('#use-sample');
    assert.equal(await idle(page, 'result'), '');
    const r = await page.evaluate(async () => {
      const error = await app.session.call('crashForTest').then(
        () => null,
        (e) => ({ name: e.name, message: e.message }),
      );
      const out = await app.session.reconstruct(app.frames);
      return { error, recoveries: app.session.recoveries, n: out.tokens.length };
    });
    assert.equal(r.error?.name, 'EngineError', JSON.stringify(r));
    assert.match(r.error.message, /crashed.*deliberate panic/);
    assert.deepEqual([r.recoveries, r.n], [1, 1024]);
    // a call that outlives its timeout fails with an EngineError, the engine restarts, and the
    // next call works (a hung GPU or a runaway loop would otherwise leave every call pending)
    const t = await page.evaluate(async () => {
      const error = await app.session.reconstruct(app.frames, { timeout: 1 }).then(
        () => null,
        (e) => ({ name: e.name, message: e.message }),
      );
      const out = await app.session.reconstruct(app.frames);
      return { error, recoveries: app.session.recoveries, n: out.tokens.length };
    });
    assert.equal(t.error?.name, 'EngineError', JSON.stringify(t));
    assert.match(t.error.message, /did not answer 'reconstruct' within 0\.001 s; it was restarted/);
    assert.deepEqual([t.recoveries, t.n], [2, 1024]);
  } finally {
    await browser.close();
  }
});

test('sampling through the JS API with temperature and top-k equals videogpt sample with the same seed', async () => {
  const browser = await launch({ webgpu: false });
  try {
    const { page } = await open(browser, '?model=tiny-untrained&prior=tiny-untrained-prior');
    const PRIOR = 'models/tiny-untrained-prior.safetensors';
    for (const [seed, temperature, topK] of [
      [3, 0.8, 8],
      [11, 1.3, 0],
    ]) {
      const page_tokens = await page.evaluate(
        async ([seed, temperature, topK, prior]) => {
          const { load } = await import('/www/videogpt.js');
          const s = await load({ prior: `/${prior}`, device: 'cpu' });
          try {
            return Array.from((await s.sample({ seed, temperature, ...(topK && { topK }) })).tokens);
          } finally {
            s.close();
          }
        },
        [seed, temperature, topK, PRIOR],
      );
      const out = path.join(tmp, `js-api-sample-${seed}.npy`);
      const args = [
        'sample',
        '--model',
        PRIOR,
        '--output',
        path.join(tmp, `js-api-sample-${seed}.y4m`),
        '--tokens',
        out,
        '--seed',
        String(seed),
        '--temperature',
        String(temperature),
      ];
      if (topK) args.push('--top-k', String(topK));
      cli(...args);
      const want = readNpy(out).data;
      assert.equal(page_tokens.length, want.length);
      assert.equal(differing(page_tokens, want), 0, `seed ${seed}, temperature ${temperature}, top-k ${topK}`);
    }
  } finally {
    await browser.close();
  }
});

for (const device of ['cpu', 'webgpu']) {
  test(`live mode on ${device === 'cpu' ? 'the wasm CPU path' : 'WebGPU'}: chunks keep coming from the fake camera, drops are counted, the camera is released on stop`, async (t) => {
    const y4m = ffmpegFromNpy(path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), path.join(tmp, 'live-camera.y4m'), ['-pix_fmt', 'yuv420p']);
    const browser = await launch({ webcam: y4m, webgpu: device === 'webgpu' });
    try {
      const { page, seen } = await open(browser, `?model=tiny-untrained&device=${device}`);
      await page.click('#live');
      await page.waitForFunction(() => app.live?.stats.chunks >= 2, null, { timeout: 120_000 });
      const first = await page.evaluate(() => ({ ...app.live.stats, psnr: app.live.stats.psnr.length }));
      // What live mode keeps on purpose (the chunks of the last 10 s for "Save", the last 16 sent
      // to ?receive tabs) fills within 10 s; after that, nothing else may grow with the stream.
      // Measured over at least 10 s and 3 chunks, precisely (after a full GC, ArrayBuffers
      // included), minus what those two buffers hold, as the lowest of five samples a second apart
      // at each end (single samples on SwiftShader differ by up to 1.2 MB with nothing kept,
      // scripts/soak-live.mjs; the floors by under 20 KB). The bound is half a camera frame
      // (176×144 RGB, 76 KB) a chunk plus 100 KB: keeping one frame a chunk fails it on both
      // paths (42 chunks on the CPU path, 3 on SwiftShader), and so does one frame a dropped frame.
      await page.waitForTimeout(11_000);
      const retained = async () => {
        const heap = await heapBytes(page);
        const kept = await page.evaluate(() =>
          [...(app.liveRecent ?? []).flatMap((c) => [c.input.data, c.output.data]), ...(app.liveSent ?? []).map((c) => c.frames)].reduce(
            (a, d) => a + d.byteLength,
            0,
          ),
        );
        const chunks = await page.evaluate(() => app.live.stats.chunks);
        return { heap, kept, chunks, at: Date.now() };
      };
      // what is in flight (a chunk's frames, its clip on the way to the engine) comes and goes:
      // the floor of five samples a second apart is what stays
      const floor = async () => {
        let low = null;
        for (let i = 0; i < 5; i++) {
          if (i) await page.waitForTimeout(1000);
          const r = await retained();
          if (!low || r.heap - r.kept < low.heap - low.kept) low = r;
        }
        return low;
      };
      const a = await floor();
      await page.waitForFunction((n) => app.live.stats.chunks >= n, a.chunks + 3, { timeout: 120_000 });
      await page.waitForTimeout(Math.max(0, a.at + 10_000 - Date.now()));
      const b = await floor();
      const s = await page.evaluate(() => ({ ...app.live.stats, psnr: app.live.stats.psnr.length }));
      const perChunk = (b.heap - b.kept - (a.heap - a.kept)) / (b.chunks - a.chunks);
      t.diagnostic(
        `${device}: ${JSON.stringify(s)}; heap ${(a.heap / 1e6).toFixed(2)} → ${(b.heap / 1e6).toFixed(2)} MB (kept for Save/receive ${(a.kept / 1e6).toFixed(2)} → ${(b.kept / 1e6).toFixed(2)} MB) over ${b.chunks - a.chunks} chunks: ${(perChunk / 1e3).toFixed(1)} KB a chunk`,
      );
      assert.ok(s.chunks > first.chunks, `no chunk arrived (${first.chunks} → ${s.chunks})`);
      // every frame read is in a finished chunk, dropped, or waiting: in the chunk the engine has
      // (4) or in the next one being collected (at most 4); nothing else is held
      const unaccounted = s.framesIn - 4 * s.chunks - s.framesDropped;
      assert.ok(unaccounted >= 0 && unaccounted <= 8, `frames: ${JSON.stringify(s)}`);
      assert.ok(s.kbitPerSecond > 0 && s.latencyMs > 0 && s.fpsIn > 0);
      assert.match(await page.textContent('#live-stats'), /fps in, .* frames dropped; latency \d+ ms; tokens [\d.]+ kbit\/s; PSNR [\d.]+ dB/);
      // frames are closed, chunks not queued, and the kept buffers bounded by the clock
      const grown = b.heap - b.kept - (a.heap - a.kept);
      assert.ok(
        grown < 38_000 * (b.chunks - a.chunks) + 100_000,
        `memory grew by ${grown} bytes over ${b.chunks - a.chunks} chunks beyond what live mode keeps on purpose (${perChunk.toFixed(0)} a chunk)`,
      );
      const keptChunks = await page.evaluate(() => app.liveRecent.length);
      assert.ok(keptChunks <= Math.ceil((11 * s.fpsOut) / 4) + 2, `"Save the last 10 s" keeps ${keptChunks} chunks at ${s.fpsOut} frames/s out`);
      if (device === 'cpu') {
        // "Save the last 10 s" while live: the camera frames as a .vgt that the CLI decodes, and
        // the reconstruction as a WebM that ffprobe counts
        const downloads = [];
        page.on('download', (d) => downloads.push(d));
        await page.click('#live-save');
        await page.waitForFunction(() => app.liveSaved, null, { timeout: 120_000 });
        await page.waitForTimeout(500);
        const saved = await page.evaluate(() => app.liveSaved);
        const files = {};
        for (const d of downloads) {
          files[d.suggestedFilename()] = path.join(tmp, `saved-${d.suggestedFilename()}`);
          await d.saveAs(files[d.suggestedFilename()]);
        }
        assert.deepEqual(Object.keys(files).sort(), ['live.vgt', 'live.webm']);
        const windowed = saved.frames < 16 ? saved.frames - (saved.frames % 4) : saved.frames - (saved.frames % 16);
        cli('decode', '--model', path.join(ROOT, 'models/tiny-untrained.safetensors'), '--input', files['live.vgt'], '--output', path.join(tmp, 'saved.npy'));
        assert.equal(readNpy(path.join(tmp, 'saved.npy')).shape[0], windowed, `decoded frames of ${JSON.stringify(saved)}`);
        const probed = execFileSync('ffprobe', [
          '-v',
          'error',
          '-count_frames',
          '-select_streams',
          'v:0',
          '-show_entries',
          'stream=nb_read_frames',
          '-of',
          'csv=p=0',
          files['live.webm'],
        ])
          .toString()
          .trim();
        assert.equal(Number(probed), saved.frames, 'the WebM holds every saved frame');
        assert.match(await page.textContent('#status'), /Saved the last [\d.]+ s: live.vgt/);
      }
      await page.click('#live');
      await page.waitForFunction(() => !app.live && document.body.dataset.state !== 'busy');
      if (device === 'cpu') {
        // the JS API over any async iterator of frames: 12 frames of a canvas are three chunks
        const api = await page.evaluate(async () => {
          const canvas = new OffscreenCanvas(96, 72);
          const ctx = canvas.getContext('2d');
          let i = 0;
          const frames = {
            async next() {
              if (i === 12) return { done: true };
              ctx.fillStyle = `rgb(${i * 20}, 80, 160)`;
              ctx.fillRect(0, 0, 96, 72);
              i++;
              return { value: { frame: canvas, width: 96, height: 72, close() {} } };
            },
          };
          const chunks = [];
          const h = await app.session.live(frames, { onChunk: (c) => chunks.push([c.output.frames, c.tokens.length]) });
          await h.done;
          await new Promise((r) => setTimeout(r, 500)); // the last chunk's answer
          return { chunks, stats: h.stats };
        });
        assert.ok(api.chunks.length >= 1 && api.chunks.every(([f, n]) => f === 4 && n === 256), JSON.stringify(api));
        assert.equal(api.stats.framesIn, 12);
      }
      assert.equal(await page.evaluate(() => app.liveTrack.readyState), 'ended', 'the camera is released');
      assert.match(await page.textContent('#status'), /Live stopped: \d+ chunks/);
      assert.deepEqual(seen.errors, []);
    } finally {
      await browser.close();
    }
  });
}

// the untrained tiny model, and each tokenizer of the natural ladder (its chunk is its temporal
// stride: 4 frames for natural-64 and 4,2,2, 2 for 2,4,4)
for (const model of ['tiny-untrained', ...index.vqvae.filter((m) => m.id.startsWith('natural')).map((m) => m.id)]) {
  test(`a second tab decodes the live token stream of ${model} (BroadcastChannel): the tokens alone carry the video`, async (t) => {
    const y4m = ffmpegFromNpy(path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), path.join(tmp, `live-camera-${model}.y4m`), ['-pix_fmt', 'yuv420p']);
    const browser = await launch({ webcam: y4m, webgpu: false });
    try {
      const context = await browser.newContext();
      const receiver = await context.newPage();
      await goto(receiver, `${server.url}?model=${model}&device=cpu&receive`);
      await receiver.waitForFunction(() => window.app?.received, null, { timeout: 180_000 });
      const sender = await context.newPage();
      await goto(sender, `${server.url}?model=${model}&device=cpu`);
      await sender.waitForFunction(() => window.app?.session?.model, null, { timeout: 180_000 });
      await sender.click('#live');
      await receiver.waitForFunction(() => app.received.chunks >= 4, null, { timeout: 120_000 });
      const sent = await sender.evaluate(() => app.liveSent.map((c) => ({ seq: c.seq, frames: Array.from(c.frames) })));
      const got = await receiver.evaluate(() => ({
        ...app.received,
        frames: app.received.frames.map((c) => ({ seq: c.seq, withContext: c.withContext, frames: Array.from(c.frames) })),
      }));
      await sender.click('#live');
      // the receiver decodes each window's tokens (the chunk with its context, as the sender
      // encoded them) as the sender decoded them: measured 61 dB and above (only the decoder's
      // float sums may differ). Before the context's tokens travelled too, the receiver used the
      // previous chunk's own tokens as context, which a trained model encodes differently in the
      // next window: 21 to 27 dB off for natural-64. The first chunk has no context; it is not compared.
      const common = got.frames.filter((g) => g.withContext && sent.some((s) => s.seq === g.seq));
      assert.ok(
        common.length >= 2,
        `${common.length} chunks decoded with context seen on both sides (received ${JSON.stringify(got.frames.map((g) => [g.seq, g.withContext]))}, sent ${JSON.stringify(sent.map((s) => s.seq))})`,
      );
      const db = common.map((g) => psnr(sent.find((x) => x.seq === g.seq).frames, g.frames));
      t.diagnostic(
        `${model}: received ${got.chunks} chunks (${got.dropped} dropped), ${(got.bits / 1000).toFixed(1)} kbit in all; receiver vs sender ${db.map((d) => d.toFixed(1)).join(' ')} dB`,
      );
      assert.ok(
        db.every((d) => d > 50),
        `the receiver's frames differ from the sender's: ${db} dB`,
      );
      assert.match(await receiver.textContent('#live-stats'), /received \d+ chunks .* kbit\/s of tokens/);
    } finally {
      await browser.close();
    }
  });
}
