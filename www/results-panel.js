// The reconstruction panel: the input and its reconstruction playing side by side, the metrics,
// the token grid, the exports (PNG strip, WebM, tokens as .npy and .vgt) and sharing (a link or
// embed code that carries the tokens; a shared link's clip is decoded here).

import { drawMetrics, drawTokens } from './draw.js';
import { encodeWebm } from './media.js';
import { player } from './player.js';
import { loadPrior, priorOver } from './generate-panel.js';
import { download, embedCodeFor, linkFor, tokensToNpy } from './share.js';
import { app, subscribe } from './state.js';
import { $, job, mean, status } from './ui.js';
import { drawFrame, fromBase64Url } from './util.js';

/** Show reconstruction `r` of clip `source` (what the user gave: its size, rate, file bit rate). */
export function showReconstruction(r, source) {
  app.result = r;
  $('result').hidden = false;
  $('original').closest('figure').hidden = false;
  player.fps = Math.min(Math.max(source.fps || 8, 1), 30);
  player.set($('original'), r.input);
  player.set($('reconstruction'), r.output);
  drawMetrics($('metrics-plot'), r.psnr, r.ssim);
  drawTokens($('tokens-canvas'), r.tokens, r.latent);
  const m = app.session.model;
  const bits = r.tokens.length * m.tokenBits;
  const seconds = r.input.frames / (source.fps || 30);
  const rows = [
    ['backend', app.session.backend === 'webgpu' ? `WebGPU (${app.session.adapter})` : 'CPU (WebAssembly)'],
    [
      'input',
      `${source.frames} frames at ${source.width}×${source.height}${source.fps ? `, ${source.fps.toFixed(1)} fps` : ''} → ${r.input.frames}×${r.input.height}×${r.input.width}`,
    ],
    ['frames to the engine', source.images ? 'as images, copied GPU to GPU (copyExternalImageToTexture)' : 'as RGB bytes'],
    ['tokens', `${r.latent.join('×')} = ${r.tokens.length} tokens of ${m.tokenBits} bits = ${(bits / 8192).toFixed(2)} KiB`],
    ['token bit rate', `${(bits / seconds / 1000).toFixed(1)} kbit/s${source.fps ? '' : ' (at 30 fps)'}`],
    ['source file bit rate', source.sourceBitsPerSecond ? `${(source.sourceBitsPerSecond / 1000).toFixed(1)} kbit/s` : '—'],
    ['PSNR', `${mean(r.psnr).toFixed(2)} dB mean of the frames`],
    ['SSIM', `${mean(r.ssim).toFixed(4)} mean`],
    ['shared tokens', 'made when saved, linked or embedded'],
    [
      'time',
      r.encodeMs === undefined
        ? `${r.totalMs.toFixed(0)} ms (encode and decode in one GPU submission)`
        : `encode ${r.encodeMs.toFixed(0)} ms, decode ${r.decodeMs.toFixed(0)} ms`,
    ],
  ];
  $('stats').replaceChildren(
    ...rows.flatMap(([k, v]) => {
      const dt = document.createElement('dt');
      dt.textContent = k;
      const dd = document.createElement('dd');
      dd.textContent = v;
      dd.dataset.stat = k;
      return [dt, dd];
    }),
  );
}

// ---------- exports ----------

$('export-png').onclick = () => {
  const clip = app.result.output;
  const strip = document.createElement('canvas');
  strip.width = clip.width * clip.frames;
  strip.height = clip.height;
  const tmp = document.createElement('canvas');
  for (let i = 0; i < clip.frames; i++) {
    drawFrame(tmp, clip, i);
    strip.getContext('2d').drawImage(tmp, i * clip.width, 0);
  }
  strip.toBlob((b) => download(b, 'reconstruction.png'), 'image/png');
};

$('export-webm').onclick = () =>
  job('Encoding the reconstruction as WebM…', async () => {
    const bytes = await encodeWebm(app.result.output, { fps: player.fps });
    download(new Blob([bytes], { type: 'video/webm' }), 'reconstruction.webm');
    status(`Saved reconstruction.webm (${(bytes.length / 1024).toFixed(1)} KiB, ${app.result.output.frames} frames at ${player.fps} fps).`);
  });

app.tokensToNpy = tokensToNpy;

$('export-tokens').onclick = () => download(new Blob([tokensToNpy(app.result.tokens, app.result.latent)]), 'tokens.npy');
// ---------- the tokens that leave the page: coded under the prior where the tokenizer has one ----------

subscribe((s) => {
  const prior = s.session && priorOver(s.session.modelId);
  $('compress-label').hidden = !prior;
  $('compress-prior').textContent = prior?.id ?? '';
});
$('compress-tokens').addEventListener('change', () => {
  if (app.result) app.result.shared = null;
});

/** The last reconstruction's tokens as the `.vgt` that is saved, linked and embedded: coded under
 *  the paired prior (version 2, docs/vgt-format.md) when the box is ticked, else bit-packed.
 *  `{ bytes, prior, bitsPerToken }`, made once per result. */
async function sharedVgt() {
  const r = app.result;
  if (r.shared) return r.shared;
  const entry = $('compress-tokens').checked ? priorOver(app.session.modelId) : null;
  if (!entry) {
    r.shared = { bytes: r.vgt, prior: null, bitsPerToken: app.session.model.tokenBits };
    return r.shared;
  }
  await loadPrior(entry);
  const grid = app.session.prior.latent;
  if (grid.join() !== r.latent.join()) {
    // e.g. natural-64 run at 128×128: a 4×32×32 grid, where the prior models 4×16×16
    r.shared = {
      bytes: r.vgt,
      prior: null,
      bitsPerToken: app.session.model.tokenBits,
      why: `${entry.id} models ${grid.join('×')} grids, not ${r.latent.join('×')}`,
    };
    return r.shared;
  }
  const started = performance.now();
  const onProgress = (done, total) => status(`Compressing the tokens under ${entry.id}: ${done}/${total}…`);
  const bytes = await app.session.codeVgt(r.vgt, { onProgress });
  const { bitsPerToken } = await app.session.vgtHeader(bytes);
  r.shared = { bytes, prior: entry, bitsPerToken, ms: performance.now() - started };
  return r.shared;
}

/** Say what the shared tokens cost, and `what` (a link or embed code) of `length` characters. */
function describe(shared, what, length) {
  const size = `${shared.bytes.length} bytes, ${shared.bitsPerToken.toFixed(2)} bits per token`;
  const coded = shared.prior
    ? ` coded under ${shared.prior.id} (${app.result.vgt.length} bytes bit-packed, ${app.session.model.tokenBits} bits per token)`
    : shared.why
      ? ` bit-packed (not coded: ${shared.why})`
      : '';
  const text = `${what ? `${what}: ${length} characters; ` : ''}tokens ${size}${coded}.`;
  const dd = $('stats').querySelector('[data-stat="shared tokens"]');
  if (dd) dd.textContent = text;
  return text;
}

$('export-vgt').onclick = () =>
  job('Preparing the tokens…', async () => {
    const shared = await sharedVgt();
    download(new Blob([shared.bytes]), 'clip.vgt');
    status(`Saved clip.vgt: ${describe(shared)}`);
  });

// ---------- sharing: the tokens travel in the link's fragment (never sent to a server) ----------

/** A link that opens this page and decodes the clip from the fragment. */
export function shareLink(vgt) {
  return linkFor(location.href, app.session.modelId, vgt);
}

function embedCode(shared) {
  const entry = app.models.vqvae.find((m) => m.id === app.session.modelId);
  return embedCodeFor(new URL('.', location.href).href, entry?.file, shared.bytes, shared.prior?.file);
}

async function copy(text, what, shared) {
  let copied = true;
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    copied = false; // the page lost the click's permission while compressing, or has none
  }
  status(`${what} ${copied ? 'copied' : 'ready: copy it from the box below'} (${describe(shared, what, text.length)})`);
  $('share-text').hidden = false;
  $('share-text').value = text;
}
$('copy-link').onclick = () =>
  job('Preparing the link…', async () => {
    const shared = await sharedVgt();
    await copy(shareLink(shared.bytes), 'Link', shared);
  });
$('copy-embed').onclick = () =>
  job('Preparing the embed code…', async () => {
    const shared = await sharedVgt();
    await copy(embedCode(shared), 'Embed code', shared);
  });

/** Opened from a shared link: decode the fragment's tokens with the named model. */
export async function openSharedClip() {
  const m = location.hash.match(/vgt=([A-Za-z0-9_-]+)/);
  if (!m) return;
  status('Decoding the shared clip…');
  const bytes = fromBase64Url(m[1]);
  const { priorHash } = await app.session.vgtHeader(bytes);
  if (priorHash) {
    // coded under a prior: the index names each file by its SHA-256, whose first 16 bytes the link gives
    const entry = app.models.prior.find((p) => p.sha256.startsWith(priorHash));
    if (!entry) throw Object.assign(new Error(`the link's tokens are coded under prior ${priorHash}, which this page does not have`), { name: 'InputError' });
    await loadPrior(entry);
  }
  const onProgress = (done, total) => status(`Decoding the shared clip: ${done}/${total} tokens…`);
  const { video, latent, tokens } = await app.session.decodeVgt(bytes, { onProgress });
  app.sharedTokens = tokens;
  app.shared = video;
  $('result').hidden = false;
  $('original').closest('figure').hidden = true;
  player.fps = video.fps || 8;
  player.set($('reconstruction'), video);
  drawTokens($('tokens-canvas'), tokens, latent);
  status(`Decoded a shared clip: ${video.frames} frames from ${tokens.length} tokens in the link.`);
}
