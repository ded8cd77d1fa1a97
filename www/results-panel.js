// The reconstruction panel: the input and its reconstruction playing side by side, the metrics,
// the token grid, the exports (PNG strip, WebM, tokens as .npy and .vgt) and sharing (a link or
// embed code that carries the tokens; a shared link's clip is decoded here).

import { drawMetrics, drawTokens } from './draw.js';
import { encodeWebm } from './media.js';
import { player } from './player.js';
import { download, embedCodeFor, linkFor, tokensToNpy } from './share.js';
import { app } from './state.js';
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
$('export-vgt').onclick = () => download(new Blob([app.result.vgt]), 'clip.vgt');

// ---------- sharing: the tokens travel in the link's fragment (never sent to a server) ----------

/** A link that opens this page and decodes the clip from the fragment. */
export function shareLink(vgt) {
  return linkFor(location.href, app.session.modelId, vgt);
}

function embedCode(vgt) {
  const entry = app.models.vqvae.find((m) => m.id === app.session.modelId);
  return embedCodeFor(new URL('.', location.href).href, entry?.file, vgt);
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
    status(`${what} copied (${text.length} characters).`);
  } catch {
    status(`${what}: copy it from the box below.`);
  }
  $('share-text').hidden = false;
  $('share-text').value = text;
}
$('copy-link').onclick = () => copy(shareLink(app.result.vgt), 'Link');
$('copy-embed').onclick = () => copy(embedCode(app.result.vgt), 'Embed code');

/** Opened from a shared link: decode the fragment's tokens with the named model. */
export async function openSharedClip() {
  const m = location.hash.match(/vgt=([A-Za-z0-9_-]+)/);
  if (!m) return;
  status('Decoding the shared clip…');
  const { video, latent, tokens } = await app.session.decodeVgt(fromBase64Url(m[1]));
  app.shared = video;
  $('result').hidden = false;
  $('original').closest('figure').hidden = true;
  player.fps = video.fps || 8;
  player.set($('reconstruction'), video);
  drawTokens($('tokens-canvas'), tokens, latent);
  status(`Decoded a shared clip: ${video.frames} frames from ${tokens.length} tokens in the link.`);
}
