// The dist/ package on a static host: a page with just the script tag and the element shows a
// decoded clip; and its npm tarball installed into an empty folder, served as node_modules/ and
// in a CDN's /npm/NAME@VERSION/ layout to a page on another origin (scripts/build-dist.sh must
// have run; scripts/test.sh does).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { launch } from './browser.mjs';
import { execFileSync } from 'node:child_process';
import { ROOT, goto, serve, tmp, watch } from './helpers.mjs';

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
  await page.route('**/minimal.html', (route) =>
    route.fulfill({
      contentType: 'text/html',
      body: `<script type="module" src="www/video-gpt.js"></script><video-gpt model="models/${model}" tokens="www/media/calais-1906.vgt" autoplay loop></video-gpt>`,
    }),
  );
  await goto(page, `${server.url}minimal.html`);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.querySelector('video-gpt')?.state), null, { timeout: 300_000 });
  const r = await page.$eval('video-gpt', (e) => ({
    state: e.state,
    status: e.shadowRoot.querySelector('[part=status]').textContent,
    frames: e.frames?.frames,
  }));
  assert.equal(r.state, 'ready', r.status);
  assert.equal(r.frames, 16);
  assert.deepEqual(seen.errors, []);
  assert.deepEqual(
    seen.requests.filter((u) => !u.startsWith(server.url)),
    [],
  );
});

test('the npm package, installed from its tarball and served CDN-style from another origin, shows the clip', async () => {
  const tarball = fs.readdirSync(DIST).find((f) => /^videogpt-web-.*\.tgz$/.test(f));
  assert.ok(tarball, 'no npm package in dist/: scripts/build-dist.sh packs one');
  const version = tarball.match(/^videogpt-web-(.*)\.tgz$/)[1];
  // `npm install TARBALL` into an empty folder, then the CDN layout /npm/NAME@VERSION/
  const site = fs.mkdtempSync(path.join(tmp, 'cdn-'));
  execFileSync('npm', ['install', '--offline', '--no-audit', '--no-fund', '--loglevel=error', path.join(DIST, tarball)], { cwd: site });
  const pkg = path.join(site, 'node_modules/videogpt-web');
  const packed = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'));
  assert.equal(packed.exports['./video-gpt'], './www/video-gpt.js');
  fs.mkdirSync(path.join(site, 'npm'));
  fs.cpSync(pkg, path.join(site, `npm/videogpt-web@${version}`), { recursive: true });
  fs.writeFileSync(path.join(site, 'index.html'), '');
  const cdn = await serve(site, ['--cors']);
  const blogDir = fs.mkdtempSync(path.join(tmp, 'npm-blog-'));
  const model = fs.readdirSync(path.join(pkg, 'models')).find((f) => f.endsWith('.safetensors'));
  const base = `${cdn.url}npm/videogpt-web@${version}/`;
  fs.writeFileSync(
    path.join(blogDir, 'index.html'),
    `<!doctype html><link rel="icon" href="data:,">
<script type="module" src="${base}www/video-gpt.js"></script>
<video-gpt id="t" model="${base}models/${model}" tokens="${base}www/media/calais-1906.vgt"></video-gpt>
<video-gpt id="s" model="${base}models/${model}" src="${base}www/media/calais-1906.mp4"></video-gpt>
<video-gpt id="n" model="${cdn.url}node_modules/videogpt-web/models/${model}" tokens="${cdn.url}node_modules/videogpt-web/www/media/calais-1906.vgt"></video-gpt>`,
  );
  const blog = await serve(blogDir);
  const page = await browser.newPage();
  const seen = watch(page);
  try {
    await goto(page, blog.url);
    await page.waitForFunction(() => [...document.querySelectorAll('video-gpt')].every((e) => ['ready', 'error'].includes(e.state)), null, {
      timeout: 300_000,
    });
    const r = await page.$$eval('video-gpt', (els) =>
      els.map((e) => [e.id, e.state, e.shadowRoot.querySelector('[part=status]').textContent, e.frames?.frames]),
    );
    for (const [id, state, status, frames] of r) {
      assert.equal(state, 'ready', `${id}: ${status}`);
      assert.equal(frames, 16, id);
    }
    assert.deepEqual(seen.errors, []);
  } finally {
    await page.close();
    blog.stop();
    cdn.stop();
  }
});
