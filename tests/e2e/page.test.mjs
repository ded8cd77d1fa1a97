// The demo page in Chromium with WebGPU (SwiftShader): inputs, reconstruction, exports,
// generation, bad inputs, device loss, and no request leaving 127.0.0.1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';
import {
  ARTIFACTS,
  ROOT,
  checkTokens,
  cli,
  cliTokensFor,
  differing,
  ffmpegFromNpy,
  goto,
  idle,
  pageBytes,
  psnr,
  readNpy,
  serve,
  tmp,
  watch,
} from './helpers.mjs';

const MODEL = 'models/tiny-untrained.safetensors';
const PRIOR = 'models/tiny-untrained-prior.safetensors';
let browser, server, page, seen;

before(async () => {
  server = await serve();
  browser = await launch();
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  seen = watch(page);
  // the tiny model: SwiftShader runs WebGPU on the CPU, slowly; 'auto' would pick the CPU path
  // over this software adapter, so WebGPU is forced
  await goto(page, `${server.url}?model=tiny-untrained&prior=tiny-untrained-prior&device=webgpu`);
  await page.waitForFunction(() => window.app?.session || document.body.dataset.state === 'failed', null, { timeout: 180_000 });
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** Clear the last result, run `action`, wait for the page's job; returns the error text. */
let seed0; // the page's seed-0 sample, from the sampling test

async function run(action, what = 'result') {
  await page.evaluate((w) => {
    window.app[w] = null;
  }, what);
  await action();
  return idle(page, what);
}

test('the page loads on WebGPU with no console errors', async () => {
  const backend = await page.getAttribute('#backend', 'data-backend');
  assert.equal(backend, 'webgpu', await page.textContent('#backend'));
  assert.equal(await page.isHidden('#fallback'), true);
  // SwiftShader is a software adapter: the page keeps the model's own resolution and says so
  assert.match(await page.textContent('#model-info'), /tiny-untrained: 0\.23 M parameters; running at 64×64: 16×64×64 clips → 4×16×16 tokens of 8 bits/);
  assert.equal(await page.inputValue('#resolution'), '');
  assert.deepEqual(seen.errors, []);
});

test("a prior's suggested sampling settings fill the generation panel", async () => {
  const settings = () => page.evaluate(() => [document.getElementById('temperature').value, document.getElementById('top-k').value]);
  assert.deepEqual(await settings(), ['1', '0'], 'the tiny prior suggests nothing: temperature 1, all codes');
  const index = JSON.parse(fs.readFileSync(path.join(ROOT, 'models/index.json'), 'utf8'));
  const suggesting = index.prior.find((m) => m.sampling);
  // and the panel says what the picked prior was trained on, with a link to its card
  const about = () =>
    page.evaluate(() => ({
      text: document.getElementById('prior-about').textContent,
      card: document.querySelector('#prior-about a')?.getAttribute('href') ?? null,
    }));
  const tiny = index.prior.find((m) => m.id === 'tiny-untrained-prior');
  assert.deepEqual(await about(), { text: `Trained on ${tiny.trained_on}.`, card: null });
  await page.selectOption('#prior-select', suggesting.id);
  assert.deepEqual(await settings(), [String(suggesting.sampling.temperature), String(suggesting.sampling.top_k)]);
  assert.deepEqual(await about(), { text: `Trained on ${suggesting.trained_on}. model card`, card: suggesting.card });
  assert.equal((await page.request.get(new URL(suggesting.card, page.url()).href)).status(), 200, 'the card link is served');
  await page.selectOption('#prior-select', 'tiny-untrained-prior');
  assert.deepEqual(await settings(), ['1', '0']);
  assert.equal((await about()).text, `Trained on ${tiny.trained_on}.`);
});

test('the bundled clip reconstructs; its tokens equal videogpt encode of the same frames; exports round-trip', async (t) => {
  const error = await run(() => page.click('#use-sample'));
  assert.equal(error, '');
  const r = await page.evaluate(() => ({
    latent: app.result.latent,
    tokens: Array.from(app.result.tokens),
    psnr: Array.from(app.result.psnr),
    frames: app.frames.frames,
    size: [app.frames.height, app.frames.width],
  }));
  assert.deepEqual(r.latent, [4, 16, 16]);
  assert.equal(r.frames, 16);
  assert.deepEqual(r.size, [160, 218]); // the bundled clip's own size, not resized by the page
  assert.equal(r.psnr.length, 16);
  const { tokens, frames } = await cliTokensFor(page, 'app.frames', MODEL);
  // equal up to float32 near-ties (this untrained model's codebook is copies of encoder outputs
  // of this very clip, the worst case for ties: see docs/exactness.md)
  const verdict = await checkTokens(page, 'app.frames', r.tokens, r.latent, MODEL);
  t.diagnostic(`bundled clip, WebGPU vs CLI: ${verdict}`);
  assert.match(verdict, /^identical|near-ties/);
  assert.ok(differing(r.tokens, tokens) <= 1024 * 0.03, `${differing(r.tokens, tokens)} tokens differ`);
  // the JS API reads the GPU runtime's counters: a second reconstruction of the same clip, counted
  // alone, does what the native runtime does for a 16-frame window (tests/gpu_stats.rs), plus the
  // ImageBitmap path's texture and its RGBA → RGB dispatch
  await page.evaluate(() => app.session.gpuStats({ reset: true }));
  const counters = await page.evaluate(async () => {
    await app.session.reconstruct(app.frames);
    return app.session.gpuStats();
  });
  t.diagnostic(`GPU counters for one 16×64×64 reconstruction: ${JSON.stringify(counters)}`);
  assert.equal(counters.byKernel.rgba_to_rgb, 1);
  assert.equal(counters.byKernel.codebook_argmin, 1);
  // a second chunk of the same shape creates nothing and waits once (codes and both clips as bytes)
  assert.equal(counters.mapWaits, 1);
  assert.equal(counters.buffersCreated, 0);
  assert.equal(
    counters.dispatches,
    Object.values(counters.byKernel).reduce((a, b) => a + b, 0),
  );
  const stats = await page.$$eval('#stats dd', (dds) => Object.fromEntries(dds.map((d) => [d.dataset.stat, d.textContent])));
  assert.match(stats.tokens, /4×16×16 = 1024 tokens of 8 bits/);
  assert.match(stats['source file bit rate'], /kbit\/s/);
  // on WebGPU the decoded frames reach the engine as ImageBitmaps, copied GPU to GPU
  assert.match(stats['frames to the engine'], /as images, copied GPU to GPU/);
  assert.equal(await page.evaluate(() => app.frames.images.length), 16);
  await page.screenshot({ path: path.join(ARTIFACTS, 'reconstruction.png'), fullPage: true });

  // the exported tokens decode with the CLI to the page's reconstruction (±1 per channel)
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#export-tokens')]);
  const npy = path.join(tmp, 'page-tokens.npy');
  await download.saveAs(npy);
  assert.deepEqual(readNpy(npy), { shape: [4, 16, 16], data: r.tokens });
  const decoded = path.join(tmp, 'page-tokens-decoded.npy');
  cli('decode', '--model', MODEL, '--input', npy, '--output', decoded);
  const cpu = readNpy(decoded).data;
  const gpu = await pageBytes(page, 'app.result.output.data');
  assert.equal(cpu.length, gpu.length);
  const worst = cpu.reduce((m, v, i) => Math.max(m, Math.abs(v - gpu[i])), 0);
  assert.ok(worst <= 1, `decoded frames differ by ${worst}`);
  assert.ok(fs.statSync(frames).size === 16 * 160 * 218 * 3 + 128);

  // the WebM export (WebCodecs VideoEncoder + our muxer) is a file ffmpeg plays: 16 frames of 64×64
  const [webm] = await Promise.all([page.waitForEvent('download'), page.click('#export-webm')]);
  const webmPath = path.join(tmp, 'reconstruction.webm');
  await webm.saveAs(webmPath);
  assert.equal(await idle(page, 'result'), '');
  const toRgb = (file) => execFileSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { maxBuffer: 1 << 26 });
  assert.equal(toRgb(webmPath).length, 16 * 64 * 64 * 3, 'ffmpeg decodes 16 frames of 64×64');
  // this untrained model's reconstructions are per-pixel colour noise, which 4:2:0 video cannot
  // hold; the encoder's fidelity is measured on the real (model-sized) input frames instead
  const bytes = await pageBytes(page, `import('./www/media.js').then((m) => m.encodeWebm(app.result.input, { fps: 15 }))`);
  const inputWebm = path.join(tmp, 'input.webm');
  fs.writeFileSync(inputWebm, bytes);
  const db = psnr(await pageBytes(page, 'app.result.input.data'), toRgb(inputWebm));
  t.diagnostic(`WebM of the input frames: ${bytes.length} bytes, ${db.toFixed(1)} dB`);
  assert.ok(db > 30, `the WebM is ${db.toFixed(1)} dB from its frames`);
});

for (const [name, args] of [
  ['H.264 MP4', ['-c:v', 'libx264', '-pix_fmt', 'yuv420p', '-crf', '18']],
  ['VP9 WebM', ['-c:v', 'libvpx-vp9', '-pix_fmt', 'yuv420p', '-crf', '20', '-b:v', '0']],
]) {
  test(`a ${name} from the file picker reconstructs; tokens equal the CLI's`, async (t) => {
    const source = path.join(ROOT, 'tests/fixtures/carphone_8f.npy');
    const file = ffmpegFromNpy(source, path.join(tmp, `carphone.${name.endsWith('MP4') ? 'mp4' : 'webm'}`), args);
    const error = await run(() => page.setInputFiles('#file-input', file));
    assert.equal(error, '');
    const r = await page.evaluate(() => ({ latent: app.result.latent, tokens: Array.from(app.result.tokens), frames: app.frames.frames }));
    assert.equal(r.frames, 8);
    assert.deepEqual(r.latent, [2, 16, 16]);
    const verdict = await checkTokens(page, 'app.frames', r.tokens, r.latent, MODEL);
    t.diagnostic(`${name}, WebGPU vs CLI: ${verdict}`);
    assert.match(verdict, /^identical|^[0-9] of 512 tokens differ, all float32 near-ties/);
    // what WebCodecs decoded is the clip we encoded (lossy codec, so close, not equal)
    const original = readNpy(source).data;
    const decoded = await pageBytes(page, 'app.session.pixels(app.frames)');
    assert.ok(psnr(original, decoded) > 30, `decoded frames are far from the source: ${psnr(original, decoded).toFixed(1)} dB`);
  });
}

test('files are read in slices: small slices give the same frames as the whole file', async () => {
  const webm = ffmpegFromNpy(path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), path.join(tmp, 'slices.webm'), [
    '-c:v',
    'libvpx-vp9',
    '-pix_fmt',
    'yuv420p',
    '-crf',
    '30',
    '-b:v',
    '0',
  ]);
  const same = await page.evaluate(async (b64) => {
    const media = await import('./www/media.js');
    const webmBytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
    const mp4Bytes = await (await fetch('www/media/calais-1906.mp4')).arrayBuffer();
    const verdicts = [];
    for (const bytes of [mp4Bytes, webmBytes]) {
      const whole = await media.decodeVideoFile(bytes, { maxFrames: 8 });
      const sliced = await media.decodeVideoFile(new Blob([bytes]), { maxFrames: 8, chunkBytes: 4096 });
      verdicts.push(whole.frames === 8 && sliced.frames === 8 && whole.data.every((v, i) => v === sliced.data[i]));
    }
    return verdicts;
  }, fs.readFileSync(webm).toString('base64'));
  assert.deepEqual(same, [true, true]);
});

test('a 4 GiB video file opens: only the bytes its first frames need are read', async (t) => {
  // ffmpeg puts the moov after the mdat; then a 4 GiB 'free' box (sparse on disk) that the
  // demuxer must skip rather than read
  const small = ffmpegFromNpy(path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), path.join(tmp, 'carphone-small.mp4'), [
    '-c:v',
    'libx264',
    '-pix_fmt',
    'yuv420p',
    '-crf',
    '18',
  ]);
  const huge = path.join(tmp, 'huge.mp4');
  fs.copyFileSync(small, huge);
  const free = Buffer.alloc(16);
  free.writeUInt32BE(1, 0);
  free.write('free', 4, 'latin1');
  free.writeBigUInt64BE(4n << 30n, 8);
  fs.appendFileSync(huge, free);
  fs.truncateSync(huge, fs.statSync(small).size + 2 ** 32);
  const started = Date.now();
  const error = await run(() => page.setInputFiles('#file-input', huge));
  assert.equal(error, '');
  const r = await page.evaluate(() => ({
    frames: app.frames.frames,
    latent: app.result.latent,
    tokens: Array.from(app.result.tokens),
    read: app.frames.bytesRead,
    size: app.frames.fileBytes,
  }));
  t.diagnostic(
    `4 GiB file: read ${(r.read / 2 ** 20).toFixed(1)} MiB of it; 8 frames decoded and reconstructed in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  assert.equal(r.size, fs.statSync(huge).size);
  assert.ok(r.read <= 16 << 20, `read ${r.read} bytes`);
  assert.equal(r.frames, 8);
  assert.deepEqual(r.latent, [2, 16, 16]);
  assert.match(await checkTokens(page, 'app.frames', r.tokens, r.latent, MODEL), /^identical|near-ties/);
  fs.rmSync(huge);
});

test('an unsupported file and a corrupt model get clear errors, and the page keeps working', async () => {
  const avi = path.join(tmp, 'clip.avi');
  ffmpegFromNpy(path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), avi, ['-c:v', 'mjpeg']);
  let error = await run(() => page.setInputFiles('#file-input', avi));
  assert.match(error, /MediaError: this file is AVI; the page reads MP4 and WebM/);

  const bad = path.join(tmp, 'broken.safetensors');
  fs.writeFileSync(bad, fs.readFileSync(path.join(ROOT, MODEL)).subarray(0, 5000));
  await page.setInputFiles('#model-file', bad);
  await page.waitForFunction(() => !document.getElementById('error').hidden && document.body.dataset.state !== 'busy');
  error = await page.textContent('#error');
  assert.match(error, /WeightsError: invalid model weights: broken\.safetensors: not a readable safetensors file/);

  // frames given as images: a closed one is refused by the JS API, a wrong size by the engine
  // itself (the browser's texture copy would throw inside wgpu, which cannot report it)
  error = await page.evaluate(async () => {
    const b = await createImageBitmap(new ImageData(64, 64));
    const clip = { images: [b, b, b, b], frames: 4, height: 64, width: 64 };
    b.close();
    return app.session.encode(clip).then(
      () => 'no error',
      (e) => `${e.name}: ${e.message}`,
    );
  });
  assert.match(error, /InputError: frame 0 is a closed image or not 64×64/);
  error = await page.evaluate(async () => {
    const [a, b] = await Promise.all([createImageBitmap(new ImageData(64, 64)), createImageBitmap(new ImageData(32, 32))]);
    return app.session.call('encode', { clip: { data: [a, a, b, a], frames: 4, height: 64, width: 64 } }).then(
      () => 'no error',
      (e) => `${e.name}: ${e.message}`,
    );
  });
  assert.match(error, /InputError: invalid input: frame 2 is 32×32 \(closed, or not the clip's 64×64\)/);

  error = await run(() => page.click('#use-sample'));
  assert.equal(error, '', 'the previous model still works');
});

test('an original VideoGPT .ckpt converts in the Worker and runs; a hostile one is refused', async (t) => {
  const ckpt = 'tests/fixtures/ckpt_vqvae.ckpt';
  await page.setInputFiles('#model-file', path.join(ROOT, ckpt));
  await page.waitForFunction(
    () => /Loaded ckpt_vqvae\.ckpt/.test(document.getElementById('status').textContent) && document.body.dataset.state !== 'busy',
    null,
    { timeout: 60_000 },
  );
  assert.match(await page.textContent('#model-info'), /16×16×16 clips → 4×4×4 tokens of 5 bits/);
  assert.equal(await run(() => page.click('#use-sample')), '');
  const r = await page.evaluate(() => ({ latent: app.result.latent, tokens: Array.from(app.result.tokens) }));
  assert.deepEqual(r.latent, [4, 4, 4]);
  // the CLI reads the same .ckpt: the same tokens (up to float32 near-ties)
  const verdict = await checkTokens(page, 'app.frames', r.tokens, r.latent, ckpt);
  t.diagnostic(`.ckpt in the page vs the CLI: ${verdict}`);
  assert.match(verdict, /^identical|near-ties/);

  await page.setInputFiles('#model-file', path.join(ROOT, 'tests/fixtures/ckpt_evil_system.ckpt'));
  await page.waitForFunction(() => !document.getElementById('error').hidden && document.body.dataset.state !== 'busy');
  assert.match(await page.textContent('#error'), /WeightsError: .*would call posix\.system; refused, nothing was run/);

  await page.selectOption('#model-select', 'tiny-untrained');
  await page.waitForFunction(
    () => /Loaded tiny-untrained/.test(document.getElementById('status').textContent) && document.body.dataset.state !== 'busy',
    null,
    { timeout: 60_000 },
  );
});

test('sampling reports progress, repeats with its seed, and matches videogpt sample', async (t) => {
  const error = await run(() => page.click('#sample'), 'sample');
  assert.equal(error, '');
  const s = await page.evaluate(() => ({
    tokens: Array.from(app.sample.tokens),
    latent: app.sample.latent,
    progress: app.sampleProgress,
    frames: app.sample.video.frames,
  }));
  assert.deepEqual(s.latent, [4, 16, 16]);
  assert.equal(s.frames, 16);
  assert.ok(s.progress.length >= 10 && s.progress.every((d, i) => i === 0 || d > s.progress[i - 1]), `progress ${s.progress}`);
  const out = path.join(tmp, 'cli-sample-tokens.npy');
  cli('sample', '--model', PRIOR, '--seed', '0', '--output', path.join(tmp, 'cli-sample.npy'), '--tokens', out);
  // the same seed draws the same uniforms on both devices; a draw whose uniform falls within
  // float rounding of a boundary between two tokens can still go either way
  const off = differing(s.tokens, readNpy(out).data);
  t.diagnostic(`seed 0: WebGPU and CPU samplers differ at ${off} of 1024 positions`);
  assert.ok(off <= 10, `WebGPU and CPU samplers disagree at ${off} of 1024 positions for seed 0`);
  const again = await page.evaluate(async () => Array.from((await app.session.sample({ seed: 0 })).tokens));
  assert.deepEqual(again, s.tokens, 'the same seed gave another sample on the same device');
  seed0 = s.tokens;
});

test('Cancel stops sampling mid-way, and the restarted engine samples the same clip again', async (t) => {
  assert.ok(seed0, 'the sampling test ran first');
  await page.evaluate(() => {
    window.app.sample = null;
    window.app.sampleProgress = [];
  });
  assert.equal(await page.isVisible('#cancel-sample'), false, 'Cancel shows only while sampling');
  await page.click('#sample');
  await page.waitForFunction(() => window.app.sampleProgress.length > 0, null, { timeout: 120_000 });
  await page.click('#cancel-sample');
  await page.waitForFunction(() => document.body.dataset.state !== 'busy', null, { timeout: 120_000 });
  const after = await page.evaluate(() => ({
    sample: window.app.sample,
    reports: window.app.sampleProgress.length,
    status: document.getElementById('status').textContent,
    error: document.getElementById('error').hidden ? '' : document.getElementById('error').textContent,
  }));
  t.diagnostic(`cancelled after ${after.reports} progress reports`);
  assert.deepEqual([after.sample, after.status, after.error], [null, 'Cancelled.', '']);
  assert.ok(after.reports < 64, 'it stopped before the last token');
  // the Worker was replaced and has the models again: the same seed gives the same clip
  const error = await run(() => page.click('#sample'), 'sample');
  assert.equal(error, '');
  assert.deepEqual(await page.evaluate(() => Array.from(app.sample.tokens)), seed0);
});

test('"continue this clip" keeps the first latent frame of the input', async () => {
  const error = await run(() => page.click('#continue'), 'sample');
  assert.equal(error, '');
  const { sampled, tokens } = await page.evaluate(async () => ({
    sampled: Array.from(app.sample.tokens),
    tokens: Array.from((await app.session.encode(app.frames, { forPrior: true })).tokens),
  }));
  assert.deepEqual(sampled.slice(0, 256), tokens.slice(0, 256));
  assert.ok(differing(sampled.slice(256), tokens.slice(256)) > 100, 'the rest is sampled, not copied');
  // the prior's VQ-VAE is tiny-untrained: the CLI agrees on the tokens (up to near-ties)
  assert.match(await checkTokens(page, 'app.frames', tokens, [4, 16, 16], MODEL), /^identical|near-ties/);
});

test('a lost GPU device is recovered by restarting the engine', async () => {
  const r = await page.evaluate(async () => {
    await app.session.engine.call('loseDevice');
    const out = await app.session.reconstruct(app.frames);
    return { recoveries: app.session.recoveries, backend: app.session.backend, n: out.tokens.length };
  });
  assert.deepEqual(r, { recoveries: 1, backend: 'webgpu', n: 1024 });
});

test('no request left 127.0.0.1 and nothing was logged as an error', () => {
  assert.deepEqual(seen.errors, []);
  assert.ok(seen.requests.length > 5);
  assert.deepEqual(
    seen.requests.filter((u) => !u.startsWith(server.url) && !/^(data|blob):/.test(u)),
    [],
  );
});
