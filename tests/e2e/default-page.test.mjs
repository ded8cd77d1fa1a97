// The page as a user opens it: no query string, so the default models (natural-64 and
// mmnist-prior at its suggested sampling settings) and device 'auto', which on this machine's
// software WebGPU adapter (SwiftShader) takes the faster wasm CPU path and says why. What the page
// shows is compared with the CLI on the same frames: tokens, the PSNR readout, the sample, and
// the WebM it saves.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';
import { ROOT, checkTokens, cli, cliTokensFor, differing, goto, idle, pageBytes, psnr, readNpy, serve, tmp, watch } from './helpers.mjs';

const index = JSON.parse(fs.readFileSync(path.join(ROOT, 'models/index.json'), 'utf8'));
const MODEL = index.vqvae.find((m) => m.id === index.default);
// the generation panel starts with the prior trained over the default tokenizer, so that
// Continue this clip continues in the clip's own tokens
const PRIOR = index.prior.find((m) => m.vqvae === index.default) ?? index.prior[0];
let browser, server, page, seen;

before(async () => {
  server = await serve();
  browser = await launch(); // WebGPU present (SwiftShader)
  page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  // the bytes the page sends its engine Worker (typed arrays and buffers in each message), so a
  // test can tell an operation that moves weights from one that does not
  await page.addInitScript(() => {
    const bytesOf = (v, depth = 0) => {
      if (v instanceof ArrayBuffer) return v.byteLength;
      if (ArrayBuffer.isView(v)) return v.byteLength;
      if (!v || typeof v !== 'object' || depth > 4) return 0;
      return Object.values(v).reduce((n, x) => n + bytesOf(x, depth + 1), 0);
    };
    window.workerBytesSent = 0;
    const post = Worker.prototype.postMessage;
    Worker.prototype.postMessage = function (message, transfer) {
      window.workerBytesSent += bytesOf(message);
      return post.call(this, message, transfer);
    };
  });
  seen = watch(page);
  await goto(page, server.url);
  await page.waitForFunction(() => window.app?.session || document.body.dataset.state === 'failed', null, { timeout: 180_000 });
});

/** Pick tokenizer `id` in the page's picker and wait until it is loaded. */
async function pickTokenizer(id) {
  await page.selectOption('#model-select', id);
  await page.waitForFunction((id) => document.getElementById('model-info').textContent.startsWith(`${id}:`) && document.body.dataset.state !== 'busy', id, {
    timeout: 120_000,
  });
}

after(async () => {
  await browser?.close();
  server?.stop();
});

test('the page opens with the bundled clip already reconstructed by the default tokenizer', async () => {
  await page.evaluate(() => window.app.ready);
  const r = await page.evaluate(() => ({
    latent: window.app.result?.latent,
    frames: window.app.frames?.frames,
    status: document.getElementById('status').textContent,
  }));
  assert.deepEqual(r.latent, MODEL.tokens, 'no reconstruction on the first screen');
  assert.equal(r.frames, 16);
  assert.equal(await page.isVisible('#result'), true);
  assert.match(r.status, /Calais, 1906/);
});

test("'auto' passes over the software adapter to the CPU path and says why", async () => {
  assert.equal(MODEL.id, 'natural-64');
  assert.equal(await page.getAttribute('#backend', 'data-backend'), 'cpu');
  assert.match(
    await page.textContent('#fallback'),
    /WebGPU here is a software renderer \(.*swiftshader.*\), slower than WebAssembly, so the engine runs on the CPU/i,
  );
  assert.match(await page.textContent('#model-info'), /^natural-64: .* running at 64×64/);
  assert.deepEqual(seen.errors, []);
});

test('the bundled clip reconstructs with natural-64: tokens and the PSNR readout equal the CLI; the saved WebM is the reconstruction', async (t) => {
  await page.evaluate(() => {
    window.app.result = null;
  });
  await page.click('#use-sample');
  assert.equal(await idle(page, 'result'), '');
  const r = await page.evaluate(() => ({ latent: app.result.latent, tokens: Array.from(app.result.tokens) }));
  assert.deepEqual(r.latent, [4, 16, 16]);
  const file = `models/${MODEL.id}.safetensors`;
  const verdict = await checkTokens(page, 'app.frames', r.tokens, r.latent, file);
  t.diagnostic(`natural-64 on the page's CPU path vs the CLI: ${verdict}`);
  assert.match(verdict, /^identical/);

  // the PSNR the page shows is the CLI's mean per-frame PSNR on the same frames, to 0.01 dB
  const { frames } = await cliTokensFor(page, 'app.frames', file);
  const report = JSON.parse(cli('reconstruct', '--model', file, '--input', frames, '--output', path.join(tmp, 'default-recon.npy'), '--json'));
  const perFrame = report.psnr_per_frame;
  assert.equal(perFrame.length, 16);
  const cliMean = perFrame.reduce((a, b) => a + b, 0) / perFrame.length;
  const stats = await page.$$eval('#stats dt', (dts) => Object.fromEntries(dts.map((d) => [d.textContent, d.nextElementSibling.textContent])));
  t.diagnostic(`page stats: ${JSON.stringify(stats)}`);
  const shown = Number(stats.PSNR.match(/([\d.]+) dB mean/)[1]);
  t.diagnostic(`PSNR readout ${shown} dB, CLI ${cliMean.toFixed(4)} dB`);
  assert.ok(Math.abs(shown - cliMean) <= 0.005 + 1e-9, `page says ${shown} dB, the CLI ${cliMean}`);
  // and the reconstruction itself equals the CLI's
  const cliRecon = readNpy(path.join(tmp, 'default-recon.npy')).data;
  const pageRecon = await pageBytes(page, 'app.result.output.data');
  assert.equal(pageRecon.length, cliRecon.length);
  assert.ok(
    pageRecon.every((v, i) => v === cliRecon[i]),
    'the page and the CLI reconstruct differently',
  );

  // the WebM the button saves decodes (ffmpeg) to the reconstruction, not to the input
  const [webm] = await Promise.all([page.waitForEvent('download'), page.click('#export-webm')]);
  const webmPath = path.join(tmp, 'default-reconstruction.webm');
  await webm.saveAs(webmPath);
  assert.equal(await idle(page, 'result'), '');
  const decoded = execFileSync('ffmpeg', ['-v', 'error', '-i', webmPath, '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-'], { maxBuffer: 1 << 26 });
  assert.equal(decoded.length, pageRecon.length, 'the WebM holds 16 frames of 64×64');
  const toRecon = psnr(decoded, pageRecon);
  const toInput = psnr(decoded, await pageBytes(page, 'app.result.input.data'));
  t.diagnostic(`saved WebM: ${toRecon.toFixed(1)} dB from the reconstruction, ${toInput.toFixed(1)} dB from the input`);
  // measured 33.5 dB from the reconstruction (lossy 4:2:0 video of 64×64 frames) and 28.6 from
  // the input (which the reconstruction itself is 29.8 dB from): a WebM of the input would score
  // the other way round
  assert.ok(toRecon > 31 && toRecon > toInput + 3, `the WebM is ${toRecon.toFixed(1)} dB from the reconstruction, ${toInput.toFixed(1)} from the input`);
});

test('the generation panel samples the default prior at its suggested settings, as the CLI does', async (t) => {
  assert.equal(await page.inputValue('#prior-select'), PRIOR.id);
  const settings = await page.evaluate(() => [
    document.getElementById('temperature').value,
    document.getElementById('top-k').value,
    document.getElementById('seed').value,
  ]);
  assert.deepEqual(settings.slice(0, 2), [String(PRIOR.sampling.temperature), String(PRIOR.sampling.top_k)]);
  assert.equal(await page.textContent('#prior-about'), `Trained on ${PRIOR.trained_on}. model card`, 'the panel says what the prior was trained on');
  await page.evaluate(() => {
    window.app.sample = null;
  });
  await page.click('#sample');
  assert.equal(await idle(page, 'sample'), '');
  const s = await page.evaluate(() => ({ tokens: Array.from(app.sample.tokens), latent: app.sample.latent }));
  const out = path.join(tmp, 'default-sample-tokens.npy');
  cli(
    'sample',
    '--model',
    `models/${PRIOR.id}.safetensors`,
    '--seed',
    settings[2] || '0',
    '--temperature',
    settings[0],
    '--top-k',
    settings[1],
    '--output',
    path.join(tmp, 'default-sample.npy'),
    '--tokens',
    out,
  );
  const want = readNpy(out);
  assert.deepEqual(want.shape.slice(-3), s.latent);
  const off = differing(s.tokens, want.data);
  t.diagnostic(`default prior, page (wasm CPU) vs CLI: ${off} of ${s.tokens.length} tokens differ`);
  assert.equal(off, 0, 'the CPU path in the page and the CLI use the same sampler and seed');
  assert.deepEqual(seen.errors, []);
});

test("Continue this clip continues the bundled clip with the default tokenizer's prior, as videogpt sample --prefix does", async (t) => {
  assert.equal(PRIOR.vqvae, MODEL.id, `no shipped prior over ${MODEL.id}`);
  assert.equal(await page.inputValue('#prior-select'), PRIOR.id);
  await page.evaluate(() => {
    window.app.sample = null;
  });
  await page.click('#continue');
  assert.equal(await idle(page, 'sample'), '');
  const s = await page.evaluate(() => ({ tokens: Array.from(app.sample.tokens), latent: app.sample.latent }));
  // the CLI continues the same frames (the bytes the engine saw) with the same seed and settings
  const { tokens: clipTokens, frames } = await cliTokensFor(page, 'app.frames', `models/${MODEL.id}.safetensors`);
  const [seed, temperature, topK] = await page.evaluate(() => ['seed', 'temperature', 'top-k'].map((id) => document.getElementById(id).value));
  const out = path.join(tmp, 'default-continue-tokens.npy');
  cli(
    'sample',
    '--model',
    `models/${PRIOR.id}.safetensors`,
    '--prefix',
    frames,
    '--prefix-frames',
    '1',
    '--seed',
    seed || '0',
    '--temperature',
    temperature,
    '--top-k',
    topK,
    '--output',
    path.join(tmp, 'default-continue.npy'),
    '--tokens',
    out,
  );
  const want = readNpy(out);
  assert.deepEqual(want.shape.slice(-3), s.latent);
  const frame = s.latent[1] * s.latent[2];
  assert.deepEqual(s.tokens.slice(0, frame), Array.from(clipTokens.slice(0, frame)), "the first latent frame is the clip's");
  const off = differing(s.tokens, want.data);
  t.diagnostic(
    `${PRIOR.id} continuing the bundled clip, page (wasm CPU) vs CLI: ${off} of ${s.tokens.length} tokens differ; ${differing(s.tokens.slice(frame), clipTokens.slice(frame))} of the sampled ones differ from the clip's own`,
  );
  assert.equal(off, 0, 'the page and the CLI continue the same frames with the same sampler and seed');
  assert.ok(differing(s.tokens.slice(frame), clipTokens.slice(frame)) > frame, 'the rest is sampled, not copied');
  // the clip beside its continuation, the kept frames marked
  assert.equal(await page.isVisible('#continue-source'), true);
  assert.match(await page.textContent('#status'), /Continued the clip with natural-64-prior: its first 4 frames kept/);
  assert.deepEqual(seen.errors, []);
});

test('the picker offers the ladder with what each tokenizer costs, and each reconstructs the bundled clip as the CLI does', async (t) => {
  const ladder = index.vqvae.filter((m) => m.id.startsWith('natural'));
  assert.ok(ladder.length >= 2, 'natural-64 and at least one finer stride');
  const options = await page.$$eval('#model-select option', (os) => Object.fromEntries(os.map((o) => [o.value, o.textContent])));
  for (const m of ladder) {
    // e.g. "natural-stride2x4x4 · 8×16×16 tokens × 11 bits (2.5 MB)"
    assert.match(options[m.id], new RegExp(`^${m.id} · ${m.tokens.join('×')} tokens × ${m.code_bits} bits \\(`));
    await pickTokenizer(m.id);
    await page.evaluate(() => {
      window.app.result = null;
    });
    await page.click('#use-sample');
    assert.equal(await idle(page, 'result'), '');
    const r = await page.evaluate(() => ({ latent: app.result.latent, tokens: Array.from(app.result.tokens), psnr: app.result.psnr }));
    assert.deepEqual(r.latent, m.tokens, `${m.id}: the grid the index says`);
    const verdict = await checkTokens(page, 'app.frames', r.tokens, r.latent, `models/${m.id}.safetensors`);
    const mean = r.psnr.reduce((a, b) => a + b, 0) / r.psnr.length;
    t.diagnostic(`${m.id} on the page's CPU path: ${mean.toFixed(2)} dB; vs the CLI: ${verdict}`);
    assert.match(verdict, /^identical/);
    // Continue needs a prior trained over this tokenizer: natural-64 has one, the ladder's others not yet
    const paired = index.prior.find((p) => p.vqvae === m.id);
    assert.equal(await page.isDisabled('#continue'), !paired, `${m.id}: Continue ${paired ? 'disabled' : 'enabled'}`);
    if (!paired) assert.match(await page.getAttribute('#continue', 'title'), new RegExp(`was not trained over ${m.id}`));
  }
  assert.deepEqual(seen.errors, []);
});

test('changing the resolution sends the engine no weights: the same tokenizer runs at 128×128, with the grid the engine gives', async (t) => {
  await pickTokenizer(MODEL.id);
  const before = await page.evaluate(() => window.workerBytesSent);
  await page.selectOption('#resolution', '128');
  await page.waitForFunction(() => /Running at 128×128/.test(document.getElementById('status').textContent) && document.body.dataset.state !== 'busy', null, {
    timeout: 120_000,
  });
  const sent = (await page.evaluate(() => window.workerBytesSent)) - before;
  t.diagnostic(`changing the resolution sent the engine ${sent} bytes (${MODEL.id} is ${MODEL.bytes} bytes)`);
  assert.ok(sent < 1024, `the resolution change sent ${sent} bytes: weights went to the Worker again`);
  // the engine says the grid, and it is the one a 128×128 window of this stride gives
  const info = await page.evaluate(() => app.session.model);
  const [dt, dh, dw] = info.downsample;
  assert.deepEqual(info.inputLatent, [info.sequenceLength / dt, 128 / dh, 128 / dw]);
  assert.match(
    await page.textContent('#model-info'),
    new RegExp(`running at 128×128 \\(trained at 64×64\\): 16×128×128 clips → ${info.inputLatent.join('×')} tokens`),
  );
  // and it reconstructs there as the CLI does at --resolution 128
  await page.evaluate(() => {
    window.app.result = null;
  });
  await page.click('#use-sample');
  assert.equal(await idle(page, 'result'), '');
  const r = await page.evaluate(() => ({ latent: app.result.latent, tokens: Array.from(app.result.tokens) }));
  assert.deepEqual(r.latent, info.inputLatent);
  const verdict = await checkTokens(page, 'app.frames', r.tokens, r.latent, MODEL.file, ['--resolution', '128']);
  t.diagnostic(`${MODEL.id} at 128×128 on the page vs the CLI: ${verdict}`);
  assert.match(verdict, /^identical|all float32 near-ties/);
  await page.selectOption('#resolution', '');
  await page.waitForFunction(() => /Running at 64×64/.test(document.getElementById('status').textContent) && document.body.dataset.state !== 'busy', null, {
    timeout: 120_000,
  });
  assert.deepEqual(seen.errors, []);
});

test('with each tokenizer of the ladder, the share link and the embed code decode to what the CLI decodes from the same .vgt', async (t) => {
  const ladder = index.vqvae.filter((m) => m.id.startsWith('natural'));
  for (const m of ladder) {
    await pickTokenizer(m.id);
    await page.evaluate(() => {
      window.app.result = null;
    });
    await page.click('#use-sample');
    assert.equal(await idle(page, 'result'), '');
    const { link, embed, vgt } = await page.evaluate(async () => {
      const { shareLink } = await import('/www/results-panel.js');
      const { embedCodeFor } = await import('/www/share.js');
      const entry = app.models.vqvae.find((e) => e.id === app.session.modelId);
      return {
        link: shareLink(app.result.vgt),
        embed: embedCodeFor(new URL('.', location.href).href, entry.file, app.result.vgt),
        vgt: Array.from(app.result.vgt),
      };
    });
    assert.match(link, new RegExp(`\\?model=${m.id}#vgt=`));
    // the CLI decodes the page's .vgt (it names the model by id and hash)
    const file = path.join(tmp, `ladder-${m.id}.vgt`);
    fs.writeFileSync(file, Uint8Array.from(vgt));
    const decoded = path.join(tmp, `ladder-${m.id}-decoded.npy`);
    cli('decode', '--model', m.file, '--input', file, '--output', decoded);
    const want = readNpy(decoded);
    const worst = (got) => want.data.reduce((w, v, i) => Math.max(w, Math.abs(v - got[i])), 0);

    // the link: a visitor's page decodes the fragment with the model it names
    const opened = await browser.newPage();
    await goto(opened, link);
    await opened.waitForFunction(() => window.app?.shared, null, { timeout: 180_000 });
    const shared = await pageBytes(opened, 'app.shared.data');
    await opened.close();
    assert.equal(shared.length, want.data.length, `${m.id}: the link's clip`);
    // the embed code, as a blog would paste it
    const blog = await browser.newPage();
    await blog.route('**/blog/post.html', (route) => route.fulfill({ contentType: 'text/html', body: `<!doctype html>${embed}` }));
    await goto(blog, `${server.url}blog/post.html`);
    await blog.waitForFunction(() => ['ready', 'error'].includes(document.querySelector('video-gpt')?.state), null, { timeout: 180_000 });
    const state = await blog.$eval('video-gpt', (e) => [e.state, e.shadowRoot.querySelector('[part=status]').textContent]);
    assert.equal(state[0], 'ready', `${m.id}: the embed says ${state[1]}`);
    const embedded = await pageBytes(blog, `document.querySelector('video-gpt').frames.data`);
    await blog.close();
    t.diagnostic(
      `${m.id}: link and embed decode ${want.shape.join('×')}; largest difference from videogpt decode: link ${worst(shared)}, embed ${worst(embedded)}`,
    );
    assert.ok(worst(shared) <= 1 && worst(embedded) <= 1, `${m.id}: decoded frames differ from the CLI's`);
  }
  assert.deepEqual(seen.errors, []);
});
