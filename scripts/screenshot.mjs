// The README's screenshot: the page with its default model reconstructing the bundled clip, in
// Debian's Chromium as a machine without a GPU shows it: its WebGPU adapter is SwiftShader, a
// software one, so the page runs on the wasm CPU path and says why (seconds, not minutes).
//
//   bash scripts/build-web.sh && node scripts/screenshot.mjs [docs/screenshot.png] [model-id]
import path from 'node:path';
import { launch } from '../tests/e2e/browser.mjs';
import { ROOT, idle, serve } from '../tests/e2e/helpers.mjs';

const out = path.resolve(process.argv[2] ?? path.join(ROOT, 'docs/screenshot.png'));
const model = process.argv[3];

const server = await serve();
const browser = await launch();
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  await page.goto(model ? `${server.url}?model=${model}` : server.url);
  await page.waitForFunction(() => window.app?.session || document.body.dataset.state === 'failed', null, { timeout: 300_000 });
  await page.click('#use-sample');
  const error = await idle(page, 'result');
  if (error) throw new Error(`the page failed: ${error}`);
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${path.relative(process.cwd(), out)}`);
} finally {
  await browser.close();
  server.stop();
}
