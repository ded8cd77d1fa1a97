// Readers use other browsers: Debian's Firefox ESR, driven by puppeteer-core over WebDriver BiDi.
// It has WebCodecs but no WebGPU here, so it runs the wasm CPU path: the embed from another
// origin (tokens by URL and inline, src with compare) and the page with the sample clip and the
// fake webcam, with no console errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import puppeteer from 'puppeteer-core';
import { ROOT, cli, pageBytes, readNpy, serve, tmp } from './helpers.mjs';

const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
const MODEL = 'models/tiny-untrained.safetensors';
let browser, assets;

before(async () => {
  assets = await serve('.', ['--cors']);
  browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: {
      // a fake camera that needs no permission prompt
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
    },
  });
});

after(async () => {
  await browser?.close();
  assets?.stop();
});

async function open(url) {
  const page = await browser.newPage();
  const errors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
  });
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url, { timeout: 120_000 });
  return { page, errors };
}

test('Firefox: the embed from another origin decodes tokens (by URL and inline) and reconstructs src', async () => {
  const blogDir = fs.mkdtempSync(path.join(tmp, 'ff-blog-'));
  const vgt = path.join(blogDir, 'clip.vgt');
  cli('encode', '--model', MODEL, '--input', path.join(ROOT, 'tests/fixtures/carphone_8f.npy'), '--output', vgt);
  const decoded = path.join(tmp, 'ff-decoded.npy');
  cli('decode', '--model', MODEL, '--input', vgt, '--output', decoded);
  const want = readNpy(decoded).data;
  const a = assets.url;
  fs.writeFileSync(
    path.join(blogDir, 'index.html'),
    `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,">
<script type="module" src="${a}www/video-gpt.js"></script>
<video-gpt id="url" model="${a}${MODEL}" tokens="clip.vgt"></video-gpt>
<video-gpt id="inline" model="${a}${MODEL}" tokens="${fs.readFileSync(vgt).toString('base64url')}"></video-gpt>
<video-gpt id="src" model="${a}${MODEL}" src="${a}www/media/calais-1906.mp4" compare></video-gpt>`,
  );
  const blog = await serve(blogDir);
  const { page, errors } = await open(blog.url);
  try {
    await page.waitForFunction(
      () => {
        const els = [...document.querySelectorAll('video-gpt')];
        return els.length === 3 && els.every((e) => e.state === 'ready' || e.state === 'error');
      },
      { timeout: 300_000 },
    );
    const r = await page.$$eval('video-gpt', (els) =>
      Object.fromEntries(els.map((e) => [e.id, [e.state, e.shadowRoot.querySelector('[part=status]').textContent]])),
    );
    for (const id of ['url', 'inline', 'src']) assert.equal(r[id][0], 'ready', `${id}: ${r[id][1]}`);
    assert.match(r.url[1], /decoded here on the CPU/);
    for (const id of ['url', 'inline']) {
      const got = await pageBytes(page, `document.getElementById('${id}').frames.data`);
      assert.equal(got.length, want.length);
      const worst = want.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0);
      assert.ok(worst <= 1, `${id}: frames differ from videogpt decode by ${worst}`);
    }
    const dims = await page.$eval('#src', (e) => [e.original.frames, e.frames.frames, e.frames.height]);
    assert.deepEqual(dims, [16, 16, 64]);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
    blog.stop();
  }
});

test('Firefox: the page reconstructs the sample clip and records the fake webcam', async () => {
  const { page, errors } = await open(`${assets.url}?model=tiny-untrained`);
  try {
    await page.waitForFunction(() => window.app?.session || document.body.dataset.state === 'failed', { timeout: 180_000 });
    assert.equal(await page.$eval('#backend', (e) => e.dataset.backend), 'cpu');
    const done = () =>
      page.waitForFunction(() => document.body.dataset.state !== 'busy' && (window.app?.result || !document.getElementById('error').hidden), {
        timeout: 300_000,
      });
    await page.click('#use-sample');
    await done();
    assert.equal(await page.$eval('#error', (e) => (e.hidden ? '' : e.textContent)), '');
    const r = await page.evaluate(() => ({ out: app.result.output.frames, psnr: app.result.psnr.length }));
    assert.deepEqual(r, { out: 16, psnr: 16 });
    await page.evaluate(() => {
      app.result = null;
    });
    await page.click('#record-webcam');
    await done();
    assert.equal(await page.$eval('#error', (e) => (e.hidden ? '' : e.textContent)), '');
    assert.match(await page.$eval('#status', (e) => e.textContent), /Webcam: reconstructed 16 frames/);
    assert.deepEqual(errors, []);
  } finally {
    await page.close();
  }
});
