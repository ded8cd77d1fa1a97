// <video-gpt>: two elements decode from tokens with one model download, frames equal to
// `videogpt decode`; src reconstructs with compare; bad tokens show an error in the element; a
// shared link round-trips.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';
import { ROOT, cli, goto, idle, pageBytes, psnr, readNpy, serve, tmp, watch, writeNpyU8 } from './helpers.mjs';

const MODEL = 'models/tiny-untrained.safetensors';
let browser, server, vgt;

before(async () => {
  server = await serve();
  browser = await launch();
  vgt = path.join(tmp, 'carphone.vgt');
  cli('encode', '--model', MODEL, '--input', path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), '--output', vgt);
});

after(async () => {
  await browser?.close();
  server?.stop();
});

const inline = () => fs.readFileSync(vgt).toString('base64url');

/** A page served at /e2e/embed.html holding `body`, with /e2e/clip.vgt routed to the CLI's file. */
async function embedPage(body) {
  const page = await browser.newPage();
  const seen = watch(page);
  await page.route('**/e2e/*', (route) => {
    const url = new URL(route.request().url());
    if (url.pathname.endsWith('.vgt')) return route.fulfill({ body: fs.readFileSync(vgt), contentType: 'application/octet-stream' });
    return route.fulfill({ contentType: 'text/html', body: `<!doctype html><script type="module" src="/www/video-gpt.js"></script>${body}` });
  });
  await goto(page, `${server.url}e2e/embed.html`);
  return { page, seen };
}

const settled = (page, n) =>
  page.waitForFunction(
    (n) => {
      const els = [...document.querySelectorAll('video-gpt')];
      return els.length === n && els.every((e) => e.state === 'ready' || e.state === 'error');
    },
    n,
    { timeout: 300_000 },
  );

test('two elements decode from tokens with one model download, frames equal videogpt decode', async () => {
  const { page, seen } = await embedPage(`
    <video-gpt id="a" model="/${MODEL}" tokens="/e2e/clip.vgt" autoplay loop controls></video-gpt>
    <video-gpt id="b" model="/${MODEL}" tokens="${inline()}"></video-gpt>`);
  await settled(page, 2);
  const states = await page.$$eval('video-gpt', (els) => els.map((e) => [e.state, e.shadowRoot.querySelector('[part=status]').textContent]));
  assert.deepEqual(
    states.map((s) => s[0]),
    ['ready', 'ready'],
    JSON.stringify(states),
  );
  assert.equal(seen.requests.filter((u) => u.endsWith(MODEL)).length, 1, 'the model was downloaded more than once');
  const decoded = path.join(tmp, 'carphone-decoded.npy');
  cli('decode', '--model', MODEL, '--input', vgt, '--output', decoded);
  const want = readNpy(decoded);
  for (const id of ['a', 'b']) {
    const got = await pageBytes(page, `document.getElementById('${id}').frames.data`);
    assert.equal(got.length, want.data.length);
    const worst = want.data.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0);
    assert.ok(worst <= 1, `element ${id}: frames differ from videogpt decode by ${worst}`);
  }
  // what the reader sees is the decoded clip
  const pixel = await page.$eval('#a', (e) => Array.from(e.shadowRoot.querySelector('canvas[part=video]').getContext('2d').getImageData(0, 0, 1, 1).data));
  assert.equal(pixel[3], 255);
  assert.deepEqual(seen.errors, []);
  await page.close();
});

test("src reconstructs a video on the reader's machine, side by side with compare", async (t) => {
  const { page, seen } = await embedPage(`<video-gpt id="v" model="/${MODEL}" src="/www/media/calais-1906.mp4" compare device="webgpu"></video-gpt>`);
  await settled(page, 1);
  const r = await page.$eval('#v', (e) => ({
    state: e.state,
    status: e.shadowRoot.querySelector('[part=status]').textContent,
    output: [e.frames.frames, e.frames.height, e.frames.width],
    input: [e.original.frames, e.original.height, e.original.width],
    originalShown: !e.shadowRoot.querySelector('canvas[part=original]').hidden,
  }));
  assert.equal(r.state, 'ready', r.status);
  assert.deepEqual(r.output, [16, 64, 64]);
  assert.deepEqual(r.input, [16, 64, 64]);
  assert.ok(r.originalShown, 'compare shows the original beside the reconstruction');
  assert.match(r.status, /16 frames, 64×64, decoded here on WebGPU/);
  // the original is the film, not a blank: its pixels vary
  const original = await pageBytes(page, `document.getElementById('v').original.data`);
  const mean = original.reduce((a, b) => a + b, 0) / original.length;
  const sd = Math.sqrt(original.reduce((a, b) => a + (b - mean) ** 2, 0) / original.length);
  assert.ok(sd > 20, `original frames look blank (sd ${sd.toFixed(1)})`);
  // the reconstruction is the CLI's reconstruction of those model-sized frames (the element runs
  // on WebGPU, the CLI on the CPU: the same up to float32 near-ties in a few codes)
  const frames = path.join(tmp, 'embed-original.npy');
  writeNpyU8(frames, original, [16, 64, 64, 3]);
  const recon = path.join(tmp, 'embed-cli-recon.npy');
  cli('reconstruct', '--model', MODEL, '--input', frames, '--output', recon);
  const shown = await pageBytes(page, `document.getElementById('v').frames.data`);
  const want = readNpy(recon).data;
  assert.equal(shown.length, want.length);
  const db = psnr(shown, want);
  t.diagnostic(`the element's reconstruction vs the CLI's: ${db.toFixed(1)} dB`); // measured 81 dB: near-ties only
  assert.ok(db > 40, `the element's reconstruction is ${db.toFixed(1)} dB from the CLI's`);
  assert.deepEqual(seen.errors, []);
  await page.close();
});

test('bad tokens show an error in the element, and the page goes on', async () => {
  const { page } = await embedPage(`
    <video-gpt id="bad" model="/${MODEL}" tokens="AAAAAAAA"></video-gpt>
    <video-gpt id="wrong" model="/tests/fixtures/vqvae_444.safetensors" tokens="${inline()}"></video-gpt>
    <video-gpt id="good" model="/${MODEL}" tokens="${inline()}"></video-gpt>`);
  await settled(page, 3);
  const r = await page.$$eval('video-gpt', (els) =>
    Object.fromEntries(els.map((e) => [e.id, [e.state, e.shadowRoot.querySelector('[part=status]').textContent]])),
  );
  assert.equal(r.bad[0], 'error');
  assert.match(r.bad[1], /could not show this clip: invalid input: not a \.vgt token file/);
  assert.equal(r.wrong[0], 'error');
  assert.match(r.wrong[1], /\(model tiny-untrained\); this model has 64/);
  assert.equal(r.good[0], 'ready');
  await page.close();
});

test('a link with the tokens in its fragment reopens the clip', async () => {
  const page = await browser.newPage();
  await goto(page, `${server.url}?model=tiny-untrained`);
  await page.waitForFunction(() => window.app?.session, null, { timeout: 180_000 });
  await page.click('#use-sample');
  assert.equal(await idle(page, 'result'), '');
  const { link, bytes } = await page.evaluate(async () => {
    const { shareLink } = await import('/www/results-panel.js');
    return { link: shareLink(app.result.vgt), bytes: app.result.vgt.length };
  });
  assert.match(link, /\?model=tiny-untrained#vgt=[A-Za-z0-9_-]+$/);
  assert.ok(link.length < 2000, `a 16-frame clip made a ${link.length}-character link (${bytes}-byte .vgt)`);
  const original = await pageBytes(page, 'app.result.output.data');
  const opened = await browser.newPage();
  await goto(opened, link);
  await opened.waitForFunction(() => window.app?.shared, null, { timeout: 180_000 });
  const shared = await pageBytes(opened, 'app.shared.data');
  assert.deepEqual(shared, original);
  await page.close();
  await opened.close();
});
