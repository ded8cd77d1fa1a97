// <video-gpt> on a blog whose page and assets live on different origins, as bloggers have it: the
// blog on one loopback port, the engine, models and clips on another (a static host sending
// CORS headers, as a CDN does). Tokens by URL and inline, `src` with `compare`, two elements
// sharing one engine; on WebGPU and on the wasm CPU path; under the README's Content Security
// Policy; and an asset host without CORS, which must give an error naming the header.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';
import { ROOT, cli, goto, pageBytes, readNpy, serve, tmp, watch } from './helpers.mjs';

const MODEL = 'models/tiny-untrained.safetensors';
let assets, bare, blogDir, vgt, want, size;

before(async () => {
  assets = await serve('.', ['--cors']);
  bare = await serve('.'); // no Access-Control-Allow-Origin
  blogDir = fs.mkdtempSync(path.join(tmp, 'blog-'));
  fs.writeFileSync(path.join(blogDir, 'index.html'), '<!doctype html><title>blog</title>');
  vgt = path.join(blogDir, 'clip.vgt');
  cli('encode', '--model', MODEL, '--input', path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), '--output', vgt);
  const decoded = path.join(tmp, 'cross-origin-decoded.npy');
  cli('decode', '--model', MODEL, '--input', vgt, '--output', decoded);
  ({ data: want, shape: size } = readNpy(decoded));
});

after(() => {
  assets?.stop();
  bare?.stop();
});

/** The smallest policy the embed needs (documented in the README's "Content Security Policy"). */
const csp = (asset) =>
  ["default-src 'none'", `script-src ${asset} 'wasm-unsafe-eval'`, 'worker-src blob:', `connect-src ${asset} 'self'`, "style-src 'unsafe-inline'"].join('; ');

/** A blog page (its own origin) holding `body` after the README's script tag for `assetUrl`. */
async function blog(browser, assetUrl, body, { policy } = {}) {
  fs.writeFileSync(
    path.join(blogDir, 'post.html'),
    `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
${policy ? `<meta http-equiv="Content-Security-Policy" content="${policy}">` : ''}
<script type="module" src="${assetUrl}www/video-gpt.js"></script>
${body}`,
  );
  const server = await serve(blogDir);
  const page = await browser.newPage();
  const seen = watch(page);
  await goto(page, `${server.url}post.html`);
  return { page, seen, server };
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

const states = (page) =>
  page.$$eval('video-gpt', (els) => Object.fromEntries(els.map((e) => [e.id, [e.state, e.shadowRoot.querySelector('[part=status]').textContent]])));

async function tokensAndSrc(browser, backend, policy, { resolution } = {}) {
  const asset = assets.url;
  // SwiftShader is a software adapter: 'auto' would take the CPU path, so WebGPU is forced
  const dev = backend === 'WebGPU' ? ' device="webgpu"' : '';
  const big = resolution ? `<video-gpt id="big" model="${asset}${MODEL}" src="${asset}www/media/calais-1906.mp4" resolution="${resolution}"></video-gpt>` : '';
  const { page, seen, server } = await blog(
    browser,
    asset,
    `
    <video-gpt id="url" model="${asset}${MODEL}" tokens="clip.vgt" autoplay loop${dev}></video-gpt>
    <video-gpt id="inline" model="${asset}${MODEL}" tokens="${fs.readFileSync(vgt).toString('base64url')}"${dev}></video-gpt>
    <video-gpt id="src" model="${asset}${MODEL}" src="${asset}www/media/calais-1906.mp4" compare${dev}></video-gpt>${big}`,
    { policy },
  );
  try {
    const ids = ['url', 'inline', 'src', ...(resolution ? ['big'] : [])];
    await settled(page, ids.length);
    const r = await states(page);
    for (const id of ids) assert.equal(r[id][0], 'ready', `${id}: ${r[id][1]}`);
    if (resolution) {
      // the same model file run at another resolution: the reconstruction has that size
      const dims = await page.$eval('#big', (e) => [e.frames.frames, e.frames.height, e.frames.width]);
      assert.deepEqual(dims, [16, resolution, resolution]);
    }
    assert.match(r.url[1], new RegExp(`decoded here on ${backend}`));
    // the frames the reader sees are videogpt decode's
    for (const id of ['url', 'inline']) {
      const got = await pageBytes(page, `document.getElementById('${id}').frames.data`);
      assert.equal(got.length, want.length, `${id}: ${got.length} bytes, videogpt decode gives ${want.length}`);
      const worst = want.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0);
      assert.ok(worst <= 1, `${id}: frames differ from videogpt decode by ${worst}`);
    }
    // the pixels on screen and the frame index, read together (the clip is playing)
    const shown = await page.$eval('#url', (e) => {
      const c = e.shadowRoot.querySelector('canvas[part=video]');
      return { w: c.width, h: c.height, frame: e.index, px: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data) };
    });
    const [, h, w] = size;
    assert.deepEqual([shown.h, shown.w], [h, w]);
    const frame = shown.frame;
    const rgb = shown.px.filter((_, i) => i % 4 !== 3);
    const expected = want.slice(frame * h * w * 3, (frame + 1) * h * w * 3);
    const off = rgb.reduce((m, v, i) => Math.max(m, Math.abs(v - expected[i])), 0);
    assert.ok(off <= 1, `the canvas differs from decoded frame ${frame} by ${off}`);
    // one model download per resolution, all from the asset host
    assert.equal(seen.requests.filter((u) => u.endsWith(MODEL)).length, resolution ? 2 : 1);
    assert.deepEqual(seen.errors, []);
  } finally {
    await page.close();
    server.stop();
  }
}

test('embed from another origin on WebGPU: tokens by URL and inline, src with compare', async () => {
  const browser = await launch();
  try {
    await tokensAndSrc(browser, 'WebGPU');
  } finally {
    await browser.close();
  }
});

test('embed from another origin on the wasm CPU path, under the documented CSP, one element at resolution 128', async () => {
  const browser = await launch({ webgpu: false });
  try {
    await tokensAndSrc(browser, 'the CPU', csp(assets.url.replace(/\/$/, '')), { resolution: 128 });
  } finally {
    await browser.close();
  }
});

test('an asset host without CORS gives an error naming the header', async () => {
  const browser = await launch({ webgpu: false });
  const { page, server } = await blog(browser, assets.url, `<video-gpt id="v" model="${bare.url}${MODEL}" tokens="clip.vgt"></video-gpt>`);
  try {
    await settled(page, 1);
    const r = await states(page);
    assert.equal(r.v[0], 'error');
    assert.match(r.v[1], /Access-Control-Allow-Origin/);
  } finally {
    await page.close();
    server.stop();
    await browser.close();
  }
});
