// The generation panel: sample a clip from a GPT prior, or continue the current clip with the
// prior trained over its tokenizer; tokens drawn as they arrive, a Cancel button, the result
// beside the clip it continues.

import { drawTokens } from './draw.js';
import { player } from './player.js';
import { app, subscribe, update } from './state.js';
import { $, job, progress, status } from './ui.js';

/** The index entry of the prior picked in the generation panel. */
export function selectedPrior() {
  return app.models?.prior.find((m) => m.id === $('prior-select').value);
}

/** The index entry of the prior trained over the tokenizer `modelId` (`vqvae` in
 *  models/index.json), if there is one. */
export function priorOver(modelId) {
  return app.models?.prior.find((m) => m.vqvae === modelId) ?? null;
}

/** Load the prior `entry` into the session, unless it is the one there already. */
export async function loadPrior(entry, onProgress) {
  if (app.session.prior && app.priorId === entry.id) return;
  status(`Loading the prior ${entry.id}…`);
  await app.session.loadPrior(entry.file, { sha256: entry.sha256, onProgress });
  app.priorId = entry.id;
}

/** The prior trained over the tokenizer `modelId` (`vqvae` in models/index.json) becomes the
 *  generation panel's, so that **Continue this clip** continues in the clip's own tokens; other
 *  priors stay in the list for sampling. */
export function pairPrior(modelId) {
  const paired = priorOver(modelId);
  if (!paired || $('prior-select').value === paired.id) return;
  $('prior-select').value = paired.id;
  useSampling(paired);
  update();
}

/** A prior's suggested sampling settings (`sampling` in models/index.json) fill the panel's
 *  inputs; priors without them sample at temperature 1 from all codes. */
export function useSampling(entry) {
  $('temperature').value = entry?.sampling?.temperature ?? 1;
  $('top-k').value = entry?.sampling?.top_k ?? 0;
}

$('prior-select').addEventListener('change', () => {
  useSampling(selectedPrior());
  update();
});

/** What the picked prior was trained on (`trained_on` in models/index.json) and a link to its
 *  card: a sample can only look like its training data. */
function describePrior(entry) {
  const about = $('prior-about');
  about.replaceChildren();
  if (!entry) return;
  about.append(`Trained on ${entry.trained_on ?? 'data its index entry does not name'}.`);
  if (entry.card) {
    const card = document.createElement('a');
    card.href = entry.card;
    card.textContent = 'model card';
    about.append(' ', card);
  }
}

let describedPrior; // the prior whose training data the panel shows

// Sample needs a loaded tokenizer and a free page; Continue also a clip, and a prior trained over
// the tokenizer it was opened with
subscribe((s) => {
  const ready = !!s.session?.model && !s.busy;
  $('sample').disabled = !ready;
  const prior = s.models && selectedPrior();
  if (prior?.id !== describedPrior) {
    describedPrior = prior?.id;
    describePrior(prior);
  }
  const paired = !!prior && prior.vqvae === s.session?.modelId;
  $('continue').disabled = !ready || !s.frames || !paired;
  $('continue').title = paired
    ? 'keep the first latent frame of the current input, sample the rest'
    : `${prior?.id ?? 'this prior'} was not trained over ${s.session?.modelId ?? 'this tokenizer'}: pick a prior over it to continue a clip`;
});

function ensurePrior() {
  return loadPrior(selectedPrior(), (d, t) => progress($('sample-progress'), d, t));
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
