// `.vgt` version 2 (tokens coded under a prior, docs/vgt-format.md) in the browser: a file the CLI
// wrote decodes in <video-gpt> on the wasm CPU path and on WebGPU to what `videogpt decode` gives
// (the prior's probabilities computed in the page must be the CLI's, bit for bit, or the range
// decoder fails); without its prior the element says which prior it needs; the page's Copy link
// codes the tokens under the tokenizer's prior, and the link opens to the same clip.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';
import { ROOT, cli, goto, idle, pageBytes, readNpy, serve, tmp, watch } from './helpers.mjs';

const index = JSON.parse(fs.readFileSync(path.join(ROOT, 'models/index.json'), 'utf8'));
const MMNIST = 'models/mmnist.safetensors';
const MMNIST_PRIOR = 'models/mmnist-prior.safetensors';
let browser, server, coded, want;

before(async () => {
  server = await serve();
  browser = await launch();
  coded = path.join(tmp, 'mmnist-coded.vgt');
  cli('encode', '--model', MMNIST, '--prior', MMNIST_PRIOR, '--input', path.join(ROOT, 'tests/fixtures/mmnist_test0.npy'), '--output', coded);
  const decoded = path.join(tmp, 'mmnist-coded-decoded.npy');
  cli('decode', '--model', MMNIST, '--prior', MMNIST_PRIOR, '--input', coded, '--output', decoded);
  want = readNpy(decoded);
});

after(async () => {
  await browser?.close();
  server?.stop();
});

/** A blog page holding `body`, with /blog/clip.vgt routed to the CLI's coded file. */
async function blogPage(body) {
  const page = await browser.newPage();
  const seen = watch(page);
  await page.route('**/blog/*', (route) => {
    if (route.request().url().endsWith('.vgt')) return route.fulfill({ body: fs.readFileSync(coded), contentType: 'application/octet-stream' });
    return route.fulfill({ contentType: 'text/html', body: `<!doctype html><script type="module" src="/www/video-gpt.js"></script>${body}` });
  });
  await goto(page, `${server.url}blog/post.html`);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.querySelector('video-gpt')?.state), null, { timeout: 300_000 });
  return { page, seen };
}

for (const device of ['cpu', 'webgpu']) {
  test(`<video-gpt device="${device}"> decodes a file the CLI coded under mmnist-prior to the clip videogpt decode gives`, async () => {
    const started = Date.now();
    const { page, seen } = await blogPage(`<video-gpt model="/${MMNIST}" prior="/${MMNIST_PRIOR}" tokens="/blog/clip.vgt" device="${device}"></video-gpt>`);
    const state = await page.$eval('video-gpt', (e) => [e.state, e.shadowRoot.querySelector('[part=status]').textContent]);
    assert.equal(state[0], 'ready', JSON.stringify(state));
    const got = await pageBytes(page, "document.querySelector('video-gpt').frames.data");
    assert.equal(got.length, want.data.length);
    const worst = want.data.reduce((m, v, i) => Math.max(m, Math.abs(v - got[i])), 0);
    assert.ok(worst <= 1, `${device}: frames differ from videogpt decode by ${worst}`);
    // the entropy model alone, timed in the page's engine (the element's time includes the downloads)
    const ms = await page.evaluate(async () => {
      const { sharedSession } = await import('/www/video-gpt.js');
      const el = document.querySelector('video-gpt');
      const s = await sharedSession(el.getAttribute('model'), undefined, el.getAttribute('device'), el.getAttribute('prior'));
      const bytes = new Uint8Array(await (await fetch('/blog/clip.vgt')).arrayBuffer());
      const t0 = performance.now();
      await s.decodeVgt(bytes);
      return performance.now() - t0;
    });
    console.log(`# ${device}: the element ready in ${Date.now() - started} ms; decoding the 1,024-token coded file took ${ms.toFixed(0)} ms in the page`);
    assert.deepEqual(seen.errors, []);
    await page.close();
  });
}

test('without its prior, <video-gpt> says which prior the tokens are coded under', async () => {
  const { page } = await blogPage(`<video-gpt model="/${MMNIST}" tokens="/blog/clip.vgt" device="cpu"></video-gpt>`);
  const [state, text] = await page.$eval('video-gpt', (e) => [e.state, e.shadowRoot.querySelector('[part=status]').textContent]);
  const hash = index.prior.find((p) => p.file === MMNIST_PRIOR).sha256.slice(0, 32);
  assert.equal(state, 'error');
  assert.match(text, new RegExp(`coded under prior ${hash}: give its URL as the prior attribute`));
  await page.close();
});

test("the page's Copy link codes the tokens under the tokenizer's prior, and the link opens to the same clip", async () => {
  const page = await browser.newPage();
  const seen = watch(page);
  await goto(page, server.url);
  await page.waitForFunction(() => window.app?.session || document.body.dataset.state === 'failed', null, { timeout: 180_000 });
  await page.evaluate(() => window.app.ready);
  assert.equal(await idle(page, 'result'), '');
  const prior = index.prior.find((p) => p.vqvae === index.default);
  assert.equal(await page.$eval('#compress-label', (e) => e.hidden), false);
  assert.equal(await page.$eval('#compress-prior', (e) => e.textContent), prior.id);
  await page.click('#copy-link');
  await page.waitForFunction(() => !document.getElementById('share-text').hidden && document.body.dataset.state !== 'busy', null, { timeout: 300_000 });
  const link = await page.$eval('#share-text', (e) => e.value);
  const said = await page.$eval('#status', (e) => e.textContent);
  assert.match(said, new RegExp(`Link (copied|ready).*${link.length} characters.*coded under ${prior.id}`));
  const v2 = new Uint8Array(Buffer.from(link.split('#vgt=')[1], 'base64url'));
  const v1 = await pageBytes(page, 'app.result.vgt');
  assert.equal(v2[4], 2, 'the link carries a version 1 file');
  assert.ok(v2.length < v1.length, `coded ${v2.length} bytes, bit-packed ${v1.length}`);
  console.log(`# the default tokenizer's link: ${v2.length} bytes coded under ${prior.id} against ${v1.length} bit-packed; ${link.length} characters`);

  // the CLI decodes the link's tokens with that prior to what it decodes from the bit-packed file
  const [codedFile, plainFile] = [path.join(tmp, 'link-v2.vgt'), path.join(tmp, 'link-v1.vgt')];
  fs.writeFileSync(codedFile, v2);
  fs.writeFileSync(plainFile, v1);
  const model = index.vqvae.find((m) => m.id === index.default).file;
  const [fromCoded, fromPlain] = [path.join(tmp, 'link-v2.npy'), path.join(tmp, 'link-v1.npy')];
  cli('decode', '--model', model, '--prior', prior.file, '--input', codedFile, '--output', fromCoded);
  cli('decode', '--model', model, '--input', plainFile, '--output', fromPlain);
  assert.deepEqual(readNpy(fromCoded).data, readNpy(fromPlain).data);

  // a visitor opening the link: the page loads the prior the link names and decodes the clip
  const opened = await browser.newPage();
  await goto(opened, link);
  await opened.waitForFunction(() => window.app?.shared || !document.getElementById('error').hidden, null, { timeout: 300_000 });
  assert.equal(await opened.$eval('#error', (e) => e.hidden), true, await opened.$eval('#error', (e) => e.textContent));
  const tokens = await pageBytes(opened, 'window.app.sharedTokens');
  const original = await pageBytes(page, 'app.result.tokens');
  assert.deepEqual(tokens, original, "the link's tokens differ from the reconstruction's");
  await opened.close();

  // at 128×128 the grid is 4×32×32, which the prior does not model: the link stays bit-packed, and says why
  await page.selectOption('#resolution', '128');
  await page.waitForFunction(() => /Running at 128×128/.test(document.getElementById('status').textContent) && document.body.dataset.state !== 'busy', null, {
    timeout: 120_000,
  });
  await page.evaluate(() => {
    window.app.result = null;
  });
  await page.click('#use-sample');
  assert.equal(await idle(page, 'result'), '');
  await page.click('#copy-link');
  await page.waitForFunction(() => /^Link (copied|ready)/.test(document.getElementById('status').textContent) && document.body.dataset.state !== 'busy', null, {
    timeout: 120_000,
  });
  assert.match(await page.$eval('#status', (e) => e.textContent), /bit-packed \(not coded: natural-64-prior models 4×16×16 grids, not 4×32×32\)/);
  const big = new Uint8Array(Buffer.from((await page.$eval('#share-text', (e) => e.value)).split('#vgt=')[1], 'base64url'));
  assert.equal(big[4], 1);
  assert.deepEqual(seen.errors, []);
  await page.close();
});
