// The page's state: one object that every panel reads, changed through `update` so that the
// panels subscribed to it (their buttons, mostly) follow. Exposed as window.app for the e2e tests
// and the curious.

export const app = {
  session: null, // the JS API's Session (videogpt.js): the engine in its Worker and its models
  models: null, // models/index.json
  frames: null, // the current input clip (RGB frames, or ImageBitmaps on WebGPU)
  result: null, // the last reconstruction
  sample: null, // the last sample or continuation
  sampleProgress: [], // tokens done at each progress report of the last sample
  priorId: null, // the index id of the prior loaded in the session
  busy: false, // a job holds the page (one at a time)
  live: null, // live mode while it runs (www/live.js)
  ready: null, // resolves when the engine and default model are loaded
};
window.app = app;

const listeners = new Set();

/** Call `fn(app)` now and after every `update`. */
export function subscribe(fn) {
  listeners.add(fn);
  fn(app);
}

/** Change the state (`changes` merged in) and tell the subscribers. */
export function update(changes = {}) {
  Object.assign(app, changes);
  for (const fn of listeners) fn(app);
}
