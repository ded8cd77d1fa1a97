// The demo page: model picker, video in (sample clip, file, webcam), reconstruction out (players
// in sync, metrics, tokens, exports) and generation with the prior. All compute goes through the
// JS API (videogpt.js), which runs the engine in a Worker. The page's state is one object
// (state.js) that the panels subscribe to; each panel wires its own handlers:
//   models-panel.js   the tokenizer picker, a model file, the resolution
//   results-panel.js  the reconstruction, its metrics, exports and sharing
//   generate-panel.js sampling and continuing a clip with a prior
//   live-panel.js     live mode and ?receive
// This file holds the inputs (sample clip, file, drop, webcam) and the start-up.

import { useSampling } from './generate-panel.js';
import { setupLive } from './live-panel.js';
import { decodeVideoFile, recordWebcam } from './media.js';
import { fill, loadModelFile, showModel } from './models-panel.js';
import { openSharedClip, showReconstruction } from './results-panel.js';
import { app, subscribe, update } from './state.js';
import { $, job, mean, progress, status } from './ui.js';
import { fetchModel, load, softwareAdapter } from './videogpt.js';

const SAMPLE_CLIP = 'www/media/calais-1906.mp4';

// the inputs need a loaded tokenizer and a free page
subscribe((s) => {
  const ready = !!s.session?.model && !s.busy;
  for (const id of ['use-sample', 'record-webcam', 'file-input']) $(id).disabled = !ready;
});

async function reconstruct(frames, label) {
  if (app.frames !== frames) for (const b of app.frames?.images ?? []) b.close();
  update({ frames });
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
  if (!f || !app.session?.model || app.busy) return;
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

const { startReceiving } = setupLive();

// ---------- start-up ----------

async function start() {
  const params = new URLSearchParams(location.search);
  const response = await fetch('models/index.json');
  if (!response.ok) throw new Error(`models/index.json: HTTP ${response.status}`);
  update({ models: await response.json() });
  const first = app.models.vqvae.find((m) => m.id === (params.get('model') ?? app.models.default)) ?? app.models.vqvae[0];
  fill($('model-select'), app.models.vqvae, first.id);
  // ?prior=ID picks the generation panel's prior (the tests pin the tiny one), like ?model=ID
  const prior = app.models.prior.find((m) => m.id === params.get('prior')) ?? app.models.prior.find((m) => m.vqvae === first.id) ?? app.models.prior[0];
  fill($('prior-select'), app.models.prior, prior?.id);
  useSampling(prior);

  // ?device=cpu forces the CPU path (and is how the no-WebGPU path is tested)
  const device = params.get('device') ?? 'auto';
  if (device !== 'cpu' && !navigator.gpu) app.noWebGpu = 'this browser has no WebGPU (navigator.gpu is missing)';
  const bytes = await fetchModel(first.file, { sha256: first.sha256, onProgress: (d, t) => progress($('load-progress'), d, t) });
  status('Starting the engine…');
  const s = await load({
    model: bytes,
    modelId: first.id,
    device: app.noWebGpu ? 'cpu' : device,
    testHooks: params.has('test-hooks'), // the browser tests' crashForTest; never set by the page
    onDeviceLost: () => status('The GPU device was lost; restarting the engine…'),
  });
  // 128×128 looks better and a GPU has the compute for it; software adapters (SwiftShader,
  // llvmpipe) and the CPU path stay at the model's own size. ?resolution=N decides instead. The
  // engine keeps the weights it has: only the input changes.
  const software = s.backend !== 'webgpu' || /swiftshader|llvmpipe|lavapipe|software/i.test(s.adapter) || !!(await softwareAdapter());
  const wanted = params.get('resolution') ?? (software ? '' : '128');
  $('resolution').value = wanted;
  if (wanted) await s.setInput({ resolution: Number(wanted) });
  update({ session: s });
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
