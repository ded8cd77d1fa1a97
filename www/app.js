// The demo page: model picker, video in (sample clip, file, webcam), reconstruction out (players
// in sync, metrics, tokens, exports) and generation with the prior. All compute goes through the
// JS API (videogpt.js), which runs the engine in a Worker.

import { load, fetchModel, softwareAdapter } from './videogpt.js';
import { decodeVideoFile, encodeWebm, recordWebcam } from './media.js';
import { setupLive } from './live-panel.js';
import { drawFrame, fromBase64Url } from './video-gpt.js';
import { drawMetrics, drawTokens } from './draw.js';
import { download, embedCodeFor, linkFor, tokensToNpy } from './share.js';

const $ = (id) => document.getElementById(id);
const SAMPLE_CLIP = 'www/media/calais-1906.mp4';

// what the page holds; exposed as window.app for the e2e tests and the curious
const app = {
  session: null,
  models: null, // models/index.json
  frames: null, // the current input clip (RGB frames)
  result: null, // the last reconstruction
  sample: null, // the last sample
  sampleProgress: [], // tokens done at each progress report of the last sample
  ready: null, // resolves when the engine and default model are loaded
};
window.app = app;

// ---------- status, progress, errors ----------

function status(text) {
  $('status').textContent = text;
}

function showError(e) {
  const box = $('error');
  box.hidden = !e;
  if (!e) return;
  const hint =
    {
      DeviceLostError: ' The GPU was reset; the page restarted the engine, so try again.',
      MediaError: '',
      FetchError: ' Check that the file is served (scripts/serve.sh).',
    }[e.name] ?? '';
  box.textContent = `${e.name && e.name !== 'Error' ? `${e.name}: ` : ''}${e.message}${hint}`;
  console.warn(e);
}

function progress(el, done, total) {
  el.hidden = false;
  if (total > 0) {
    el.max = total;
    el.value = done;
  } else el.removeAttribute('value'); // indeterminate
}

let busy = false;
/** Run one job at a time with the buttons disabled, reporting errors instead of throwing. */
async function job(label, fn) {
  if (busy) return;
  busy = true;
  document.body.dataset.state = 'busy';
  setButtons();
  showError(null);
  status(label);
  try {
    await fn();
  } catch (e) {
    status(e.name === 'CancelledError' ? 'Cancelled.' : '');
    if (e.name !== 'CancelledError') showError(e);
  } finally {
    busy = false;
    document.body.dataset.state = 'idle';
    setButtons();
    $('work-progress').hidden = true;
  }
}

function setButtons() {
  const ready = !!app.session?.model && !busy;
  for (const id of ['use-sample', 'record-webcam', 'sample']) $(id).disabled = !ready;
  $('live').disabled = !app.session?.model || (busy && !app.live);
  // a clip is continued only by a prior trained over the tokenizer it was opened with
  const prior = app.models && selectedPrior();
  const paired = !!prior && prior.vqvae === app.session?.modelId;
  $('continue').disabled = !ready || !app.frames || !paired;
  $('continue').title = paired
    ? 'keep the first latent frame of the current input, sample the rest'
    : `${prior?.id ?? 'this prior'} was not trained over ${app.session?.modelId ?? 'this tokenizer'}: pick a prior over it to continue a clip`;
  $('file-input').disabled = !ready;
}

// ---------- drawing ----------

/** Players on one clock: every registered canvas shows the same frame index. */
const player = {
  clips: new Map(), // canvas → clip
  fps: 8,
  playing: true,
  start: performance.now(),
  set(canvas, clip) {
    this.clips.set(canvas, clip);
    this.draw(true);
  },
  frame() {
    return Math.floor(((performance.now() - this.start) / 1000) * this.fps);
  },
  last: -1,
  draw(force) {
    const i = this.frame();
    if (!force && i === this.last) return;
    this.last = i;
    for (const [canvas, clip] of this.clips) drawFrame(canvas, clip, i % clip.frames);
    const r = app.result;
    if (r) $('frame-label').textContent = `frame ${(i % r.output.frames) + 1}/${r.output.frames}`;
    markKept(app.sample, i);
  },
};
function tick() {
  if (player.playing) player.draw(false);
  requestAnimationFrame(tick);
}
requestAnimationFrame(tick);
$('play').onclick = () => {
  player.playing = !player.playing;
  if (player.playing) player.start = performance.now() - (player.last / player.fps) * 1000;
  $('play').textContent = player.playing ? 'Pause' : 'Play';
};

/** A continuation's frames say which are the clip's own (kept, through the tokenizer) and
 *  which the prior sampled: the caption, and an outline on the kept ones. */
function markKept(sample, i) {
  if (!sample?.keptFrames) return;
  const f = i % sample.video.frames;
  const kept = f < sample.keptFrames;
  $('sample-video').classList.toggle('kept', kept);
  $('sample-caption').textContent = `frame ${f + 1}/${sample.video.frames}: ${kept ? 'kept from the clip' : 'sampled by the prior'}`;
}

// ---------- results ----------

const mean = (xs) => Array.from(xs).reduce((a, b) => a + (Number.isFinite(b) ? b : 100), 0) / xs.length;

function showReconstruction(r, source) {
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

async function reconstruct(frames, label) {
  if (app.frames !== frames) for (const b of app.frames?.images ?? []) b.close();
  app.frames = frames;
  status(`${label}: encoding and decoding on ${app.session.backend === 'webgpu' ? 'the GPU' : 'the CPU'}…`);
  progress($('work-progress'), 0, 0);
  const r = await app.session.reconstruct(frames);
  showReconstruction(r, frames);
  status(`${label}: reconstructed ${r.output.frames} frames, PSNR ${mean(r.psnr).toFixed(2)} dB.`);
}

/** On WebGPU, decoded frames go to the engine as ImageBitmaps, which it copies GPU to GPU; the
 *  CPU engine takes RGB bytes. `?frames=bytes` forces the bytes path. */
const asImages = () => app.session.backend === 'webgpu' && new URLSearchParams(location.search).get('frames') !== 'bytes';

async function fromFile(file) {
  await job(`Decoding ${file.name}…`, async () => {
    const n = app.session.model.sequenceLength;
    const frames = await decodeVideoFile(file, { maxFrames: n, images: asImages(), onProgress: (d, t) => progress($('work-progress'), d, t) });
    await reconstruct(frames, file.name);
  });
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

function modelEntry() {
  return app.models.vqvae.find((m) => m.id === app.session.modelId);
}

/** A link that opens this page and decodes the clip from the fragment. */
export function shareLink(vgt) {
  return linkFor(location.href, app.session.modelId, vgt);
}

function embedCode(vgt) {
  return embedCodeFor(new URL('.', location.href).href, modelEntry()?.file, vgt);
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
async function openSharedClip() {
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

// ---------- generation ----------

async function ensurePrior() {
  const entry = selectedPrior();
  if (app.session.prior && app.priorId === entry.id) return;
  status(`Loading the prior ${entry.id}…`);
  await app.session.loadPrior(entry.file, { sha256: entry.sha256, onProgress: (d, t) => progress($('sample-progress'), d, t) });
  app.priorId = entry.id;
}

async function generate(prefixFrom) {
  await job('Sampling…', async () => {
    await ensurePrior();
    const p = app.session.prior;
    const options = {
      seed: Number($('seed').value) || 0,
      temperature: Number($('temperature').value) || 1,
      topK: Number($('top-k').value) > 0 ? Number($('top-k').value) : undefined,
    };
    const started = performance.now();
    app.sampleProgress = [];
    $('sample-out').hidden = false;
    const canvas = $('sample-tokens');
    const onToken = (done, total, grid) => {
      app.sampleProgress.push(done);
      progress($('sample-progress'), done, total);
      drawTokens(canvas, grid, p.latent);
      status(`Sampling: ${done}/${total} tokens (${(done / ((performance.now() - started) / 1000)).toFixed(0)} tokens/s)…`);
    };
    const cancel = $('cancel-sample');
    cancel.hidden = false;
    cancel.onclick = () => {
      status('Cancelling…');
      app.session.cancel();
    };
    let result;
    try {
      // continuing: the prior's own VQ-VAE tokenizes the clip and its first latent frame is kept
      result = prefixFrom
        ? await app.session.continue(prefixFrom, { ...options, prefixFrames: 1, onToken })
        : await app.session.sample({ ...options, onProgress: onToken });
    } finally {
      cancel.hidden = true;
      $('sample-progress').hidden = true;
    }
    // a continuation shows the clip beside it and marks its kept frames
    result.keptFrames = result.prefixFrames ? (result.prefixFrames * result.video.frames) / result.latent[0] : 0;
    app.sample = result;
    $('continue-source').hidden = !result.keptFrames;
    $('sample-video').classList.remove('kept');
    $('sample-caption').textContent = 'decoded sample';
    if (result.keptFrames) player.set($('continue-input'), result.input);
    else player.clips.delete($('continue-input'));
    drawTokens(canvas, result.tokens, result.latent);
    player.set($('sample-video'), result.video);
    const seconds = (performance.now() - started) / 1000;
    const kept = result.keptFrames;
    status(
      kept
        ? `Continued the clip with ${app.priorId}: its first ${kept} frames kept (through the tokenizer), ${result.tokens.length - result.prefixFrames * result.latent[1] * result.latent[2]} tokens sampled in ${seconds.toFixed(1)} s.`
        : `Sampled ${result.tokens.length} tokens in ${seconds.toFixed(1)} s and decoded ${result.video.frames} frames.`,
    );
  });
}
$('sample').onclick = () => generate(null);
$('continue').onclick = () => generate(app.frames);

// ---------- inputs ----------

async function reconstructSample() {
  status('Decoding the sample clip…');
  const response = await fetch(SAMPLE_CLIP);
  if (!response.ok) throw new Error(`could not load ${SAMPLE_CLIP}: HTTP ${response.status}`);
  const n = app.session.model.sequenceLength;
  const frames = await decodeVideoFile(await response.arrayBuffer(), {
    maxFrames: n,
    images: asImages(),
    onProgress: (d, t) => progress($('work-progress'), d, t),
  });
  await reconstruct(frames, 'Calais, 1906');
}
$('use-sample').onclick = () => job('Decoding the sample clip…', reconstructSample);

$('file-input').onchange = (e) => {
  const f = e.target.files[0];
  e.target.value = '';
  if (f) fromFile(f);
};

const drop = $('drop');
drop.ondragover = (e) => {
  e.preventDefault();
  drop.classList.add('over');
};
drop.ondragleave = () => drop.classList.remove('over');
drop.ondrop = (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const f = e.dataTransfer.files[0];
  if (!f || !app.session?.model || busy) return;
  // weights dropped here load as the model (a VideoGPT .ckpt converts in the Worker); videos play
  if (/\.(safetensors|ckpt|pt|pth)$/i.test(f.name)) loadModelFile(f);
  else fromFile(f);
};

$('record-webcam').onclick = () =>
  job('Opening the camera…', async () => {
    const n = app.session.model.sequenceLength;
    const frames = await recordWebcam({
      frames: n,
      images: asImages(),
      onFrame: (i, total) => {
        progress($('work-progress'), i, total);
        status(`Recording: frame ${i}/${total}`);
      },
    });
    await reconstruct(frames, 'Webcam');
  });

// ---------- live mode (www/live-panel.js) ----------

const { startReceiving } = setupLive({ app, $, job, status, showError, setButtons });

// ---------- models and start-up ----------

/** The resolution picked on the page (undefined: the model file's). */
const pickedResolution = () => Number($('resolution').value) || undefined;

async function useModel(source, label, sha256) {
  await app.session.loadModel(source, {
    sha256,
    modelId: label,
    resolution: pickedResolution() ?? null,
    onProgress: (d, t) => progress($('load-progress'), d, t),
  });
  showModel(label);
  app.result = null;
}

function showModel(label) {
  const info = app.session.model;
  const res = info.inputResolution ?? info.resolution;
  const [dt, dh, dw] = info.downsample;
  $('load-progress').hidden = true;
  $('model-info').textContent =
    `${label}: ${(info.parameters / 1e6).toFixed(2)} M parameters; running at ${res}×${res}` +
    `${res !== info.resolution ? ` (trained at ${info.resolution}×${info.resolution})` : ''}: ` +
    `${info.sequenceLength}×${res}×${res} clips → ${info.sequenceLength / dt}×${res / dh}×${res / dw} tokens of ${info.tokenBits} bits (downsample ${info.downsample.join(',')}).`;
}

$('resolution').onchange = () =>
  job('Loading the model…', async () => {
    const entry = app.models.vqvae.find((m) => m.id === $('model-select').value);
    await useModel(app.session.modelBytes ?? entry.file, app.session.modelId, entry?.sha256);
    status(`Running at ${app.session.model.inputResolution}×${app.session.model.inputResolution}.`);
  });

$('model-select').onchange = () =>
  job('Loading the model…', async () => {
    const entry = app.models.vqvae.find((m) => m.id === $('model-select').value);
    await useModel(entry.file, entry.id, entry.sha256);
    pairPrior(entry.id);
    status(`Loaded ${entry.id}.`);
  });
/** A model file the user picked or dropped: safetensors, or an original VideoGPT checkpoint,
 *  which the Worker converts without running its pickle. */
function loadModelFile(f) {
  const verb = /\.safetensors$/i.test(f.name) ? 'Loading' : 'Converting';
  job(`${verb} ${f.name}…`, async () => {
    await useModel(f, f.name);
    status(`Loaded ${f.name}.`);
  });
}
$('model-file').onchange = (e) => {
  const f = e.target.files[0];
  e.target.value = '';
  if (f) loadModelFile(f);
};

function fill(select, list, selected) {
  select.replaceChildren(
    ...list.map((m) => {
      const o = document.createElement('option');
      o.value = m.id;
      // a tokenizer says what a 16×64×64 clip costs under it (models/index.json, train/ship.py)
      const cost = m.tokens ? ` · ${m.tokens.join('×')} tokens × ${m.code_bits} bits` : m.vqvae ? ` · over ${m.vqvae}` : '';
      o.textContent = `${m.id}${cost} (${(m.bytes / 1e6).toFixed(1)} MB)`;
      o.title = m.description;
      o.selected = m.id === selected;
      return o;
    }),
  );
}

/** The index entry of the prior picked in the generation panel. */
function selectedPrior() {
  return app.models.prior.find((m) => m.id === $('prior-select').value);
}

/** The prior trained over the tokenizer `modelId` (`vqvae` in models/index.json) becomes the
 *  generation panel's, so that **Continue this clip** continues in the clip's own tokens; other
 *  priors stay in the list for sampling. */
function pairPrior(modelId) {
  const paired = app.models.prior.find((m) => m.vqvae === modelId);
  if (!paired || $('prior-select').value === paired.id) return;
  $('prior-select').value = paired.id;
  useSampling(paired);
}

/** A prior's suggested sampling settings (`sampling` in models/index.json) fill the panel's
 *  inputs; priors without them sample at temperature 1 from all codes. */
function useSampling(entry) {
  $('temperature').value = entry?.sampling?.temperature ?? 1;
  $('top-k').value = entry?.sampling?.top_k ?? 0;
}

async function start() {
  const params = new URLSearchParams(location.search);
  const response = await fetch('models/index.json');
  if (!response.ok) throw new Error(`models/index.json: HTTP ${response.status}`);
  app.models = await response.json();
  const first = app.models.vqvae.find((m) => m.id === (params.get('model') ?? app.models.default)) ?? app.models.vqvae[0];
  fill($('model-select'), app.models.vqvae, first.id);
  // ?prior=ID picks the generation panel's prior (the tests pin the tiny one), like ?model=ID
  const prior = app.models.prior.find((m) => m.id === params.get('prior')) ?? app.models.prior.find((m) => m.vqvae === first.id) ?? app.models.prior[0];
  fill($('prior-select'), app.models.prior, prior?.id);
  useSampling(prior);
  $('prior-select').addEventListener('change', () => {
    useSampling(selectedPrior());
    setButtons();
  });

  // ?device=cpu forces the CPU path (and is how the no-WebGPU path is tested)
  const device = params.get('device') ?? 'auto';
  if (device !== 'cpu' && !navigator.gpu) app.noWebGpu = 'this browser has no WebGPU (navigator.gpu is missing)';
  const bytes = await fetchModel(first.file, { sha256: first.sha256, onProgress: (d, t) => progress($('load-progress'), d, t) });
  status('Starting the engine…');
  app.session = await load({
    model: bytes,
    modelId: first.id,
    device: app.noWebGpu ? 'cpu' : device,
    testHooks: params.has('test-hooks'), // the browser tests' crashForTest; never set by the page
    onDeviceLost: () => status('The GPU device was lost; restarting the engine…'),
  });
  const s = app.session;
  // 128×128 looks better and a GPU has the compute for it; software adapters (SwiftShader,
  // llvmpipe) and the CPU path stay at the model's own size. ?resolution=N decides instead.
  const software = s.backend !== 'webgpu' || /swiftshader|llvmpipe|lavapipe|software/i.test(s.adapter) || !!(await softwareAdapter());
  const wanted = params.get('resolution') ?? (software ? '' : '128');
  $('resolution').value = wanted;
  if (wanted) await s.loadModel(bytes, { modelId: first.id, resolution: Number(wanted) });
  showModel(first.id);
  const badge = $('backend');
  badge.dataset.backend = s.backend;
  badge.textContent = s.backend === 'webgpu' ? `Running on WebGPU: ${s.adapter}` : 'Running on the CPU (WebAssembly)';
  const why = app.noWebGpu || s.fallbackReason;
  if (s.backend === 'cpu' && device !== 'cpu') {
    const fb = $('fallback');
    fb.hidden = false;
    fb.textContent = s.softwareAdapter
      ? `WebGPU here is a software renderer (${s.softwareAdapter}), slower than WebAssembly, so the engine runs on the CPU: same results. ?device=webgpu forces WebGPU.`
      : `No WebGPU here, so the engine runs on the CPU (WebAssembly): same results, but slower for large models. Why: ${why.replace(/^GPU error: /, '')}`;
  }
  status('Ready: pick an input.');
  await openSharedClip();
  if (params.has('receive')) startReceiving();
  // opened as a visitor opens it (no query, no shared clip): the first screen shows a result, the
  // bundled clip already reconstructed by the default tokenizer; links with a query (a model, a
  // device, the tests' hooks) open on the form
  if (!location.search && !location.hash) await reconstructSample();
}

app.ready = job('Loading the model…', start);
app.ready.then(() => {
  if (!app.session) document.body.dataset.state = 'failed';
});
