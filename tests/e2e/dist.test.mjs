// The dist/ package on a static host: a page with just the script tag and the element shows a
// decoded clip (scripts/build-dist.sh must have run; scripts/test.sh does).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';
import { ROOT, goto, serve, watch } from './helpers.mjs';

const DIST = path.join(ROOT, 'dist');
let browser, server;

before(async () => {
  assert.ok(fs.existsSync(path.join(DIST, 'www/video-gpt.js')), 'dist/ is missing: run scripts/build-dist.sh');
  server = await serve('dist');
  browser = await launch();
});

after(async () => {
  await browser?.close();
  server?.stop();
});

test('a static page with only the script tag and the element shows a decoded clip', async () => {
  const model = fs.readdirSync(path.join(DIST, 'models')).find((f) => f.endsWith('.safetensors'));
  const page = await browser.newPage();
  const seen = watch(page);
  await page.route('**/minimal.html', (route) => route.fulfill({
    contentType: 'text/html',
    body: `<script type="module" src="www/video-gpt.js"></script><video-gpt model="models/${model}" tokens="www/media/calais-1906.vgt" autoplay loop></video-gpt>`,
  }));
  await goto(page, `${server.url}minimal.html`);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.querySelector('video-gpt')?.state), null, { timeout: 300_000 });
  const r = await page.$eval('video-gpt', (e) => ({ state: e.state, status: e.shadowRoot.querySelector('[part=status]').textContent, frames: e.frames?.frames }));
  assert.equal(r.state, 'ready', r.status);
  assert.equal(r.frames, 16);
  assert.deepEqual(seen.errors, []);
  assert.deepEqual(seen.requests.filter((u) => !u.startsWith(server.url)), []);
});
