// The model panel: the tokenizer picker (the quality ladder of models/index.json, each option
// saying what a clip costs), a model file of the user's own, and the resolution the tokenizer
// runs at, which the engine changes without loading the weights again.

import { pairPrior } from './generate-panel.js';
import { app } from './state.js';
import { $, job, progress, status } from './ui.js';

/** The resolution picked on the page (undefined: the model file's). */
export const pickedResolution = () => Number($('resolution').value) || undefined;

/** Options of `select` from index entries, `selected` picked; a tokenizer's says what a
 *  16×64×64 clip costs under it (models/index.json, train/ship.py). */
export function fill(select, list, selected) {
  select.replaceChildren(
    ...list.map((m) => {
      const o = document.createElement('option');
      o.value = m.id;
      const cost = m.tokens ? ` · ${m.tokens.join('×')} tokens × ${m.code_bits} bits` : m.vqvae ? ` · over ${m.vqvae}` : '';
      o.textContent = `${m.id}${cost} (${(m.bytes / 1e6).toFixed(1)} MB)`;
      o.title = m.description;
      o.selected = m.id === selected;
      return o;
    }),
  );
}

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

/** What the loaded tokenizer is and what a clip costs at its current input (the engine's grid). */
export function showModel(label) {
  const info = app.session.model;
  const res = info.inputResolution;
  $('load-progress').hidden = true;
  $('model-info').textContent =
    `${label}: ${(info.parameters / 1e6).toFixed(2)} M parameters; running at ${res}×${res}` +
    `${res !== info.resolution ? ` (trained at ${info.resolution}×${info.resolution})` : ''}: ` +
    `${info.sequenceLength}×${res}×${res} clips → ${info.inputLatent.join('×')} tokens of ${info.tokenBits} bits (downsample ${info.downsample.join(',')}).`;
}

// the engine keeps the weights: only the input changes (no model bytes are sent again)
$('resolution').onchange = () =>
  job('Changing the resolution…', async () => {
    await app.session.setInput({ resolution: pickedResolution() ?? null });
    showModel(app.session.modelId);
    app.result = null;
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
export function loadModelFile(f) {
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
