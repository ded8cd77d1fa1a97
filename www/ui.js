// The page's shared UI helpers: element lookup, the status line, errors, progress bars, and the
// job runner that lets one job hold the page at a time.

import { app, update } from './state.js';

export const $ = (id) => document.getElementById(id);

export function status(text) {
  $('status').textContent = text;
}

/** Show an error (or hide the box with `null`), with a hint where its kind has one. */
export function showError(e) {
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

/** A <progress> at `done` of `total` (indeterminate when the total is unknown). */
export function progress(el, done, total) {
  el.hidden = false;
  if (total > 0) {
    el.max = total;
    el.value = done;
  } else el.removeAttribute('value');
}

/** Run one job at a time (`app.busy`: the panels disable their buttons), reporting errors
 *  instead of throwing. */
export async function job(label, fn) {
  if (app.busy) return;
  document.body.dataset.state = 'busy';
  update({ busy: true });
  showError(null);
  status(label);
  try {
    await fn();
  } catch (e) {
    status(e.name === 'CancelledError' ? 'Cancelled.' : '');
    if (e.name !== 'CancelledError') showError(e);
  } finally {
    document.body.dataset.state = 'idle';
    update({ busy: false });
    $('work-progress').hidden = true;
  }
}

/** The mean of per-frame metrics (an identical frame's infinite PSNR counts as 100 dB). */
export const mean = (xs) => Array.from(xs).reduce((a, b) => a + (Number.isFinite(b) ? b : 100), 0) / xs.length;
