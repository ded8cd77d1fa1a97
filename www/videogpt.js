// videogpt-web's JS API: VideoGPT models running locally, in a Worker, on WebGPU (or the CPU).
//
//   import { load } from './www/videogpt.js';
//   const session = await load({ model: 'models/tiny-untrained.safetensors' });
//   session.backend                      // 'webgpu' or 'cpu'
//   const r = await session.reconstruct(frames);   // frames: { data, frames, height, width }
//   const { tokens, latent } = await session.encode(frames);
//   const video = await session.decode({ tokens, latent });
//
// Frames are uint8 RGB, T×H×W×3 (what media.js's decodeVideoFile and recordWebcam return), or on
// WebGPU `{ images: ImageBitmap[], frames, height, width }`, which go to the GPU without a CPU
// copy (decodeVideoFile(file, { images: true })); `session.pixels(frames)` gives their bytes. Errors
// are Errors whose `name` says what went wrong: WeightsError, InputError, GpuError,
// DeviceLostError, IoError, MediaError, FetchError, and EngineError (the engine crashed; the
// session restarts it, so the next request works).

const CACHE = 'videogpt-models-v1';

export class FetchError extends Error {
  constructor(message) {
    super(message);
    this.name = 'FetchError';
  }
}

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

async function sha256(bytes) {
  return hex(await crypto.subtle.digest('SHA-256', bytes));
}

/**
 * Model bytes from a URL (with byte-level progress, cached with the Cache API, checked against
 * `sha256` when given), or from a File, Blob, ArrayBuffer or typed array.
 */
export async function fetchModel(source, { sha256: expected, onProgress = () => {} } = {}) {
  if (source instanceof ArrayBuffer) return new Uint8Array(source);
  if (ArrayBuffer.isView(source)) return new Uint8Array(source.buffer, source.byteOffset, source.byteLength);
  if (typeof Blob !== 'undefined' && source instanceof Blob) {
    const bytes = new Uint8Array(await source.arrayBuffer());
    onProgress(bytes.length, bytes.length);
    return bytes;
  }
  const url = new URL(source, location.href).href;
  const cache = typeof caches !== 'undefined' ? await caches.open(CACHE).catch(() => null) : null;
  if (cache && expected) {
    const hit = await cache.match(url);
    if (hit) {
      const bytes = new Uint8Array(await hit.arrayBuffer());
      if ((await sha256(bytes)) === expected) {
        onProgress(bytes.length, bytes.length);
        return bytes;
      }
      await cache.delete(url); // stale or damaged: fetch again
    }
  }
  let response;
  try {
    response = await fetch(url);
  } catch (e) {
    // a host that refuses CORS shows up as a network error without a status
    const cross = new URL(url).origin !== location.origin;
    throw new FetchError(`could not download ${url}: ${e.message}${cross ? `; ${CORS_HINT}` : ''}`);
  }
  if (!response.ok) throw new FetchError(`could not download ${url}: HTTP ${response.status}`);
  const total = Number(response.headers.get('Content-Length')) || 0;
  const parts = [];
  let loaded = 0;
  const reader = response.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parts.push(value);
    loaded += value.length;
    onProgress(loaded, total);
  }
  const bytes = new Uint8Array(loaded);
  let at = 0;
  for (const p of parts) {
    bytes.set(p, at);
    at += p.length;
  }
  if (expected) {
    const got = await sha256(bytes);
    if (got !== expected)
      throw new FetchError(`${url} is damaged or not the expected model (SHA-256 ${got.slice(0, 12)}…, expected ${expected.slice(0, 12)}…)`);
    if (cache) await cache.put(url, new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream' } })).catch(() => {});
  }
  return bytes;
}

function remoteError({ name, message, restart }) {
  const e = new Error(message);
  e.name = name;
  if (restart) e.restart = true;
  return e;
}

/** What a host serving the engine to pages on other origins must send. */
export const CORS_HINT =
  'a host serving videogpt-web to pages on other origins must send "Access-Control-Allow-Origin: *" ' +
  '(and .wasm as application/wasm), and a page with a Content-Security-Policy must allow it (see the README)';

/**
 * A module Worker running `url`, from any origin. Browsers start Workers only from the page's own
 * origin, so when the engine lives elsewhere (a CDN, the blog's asset host) the Worker starts from
 * a same-origin `blob:` module that imports the real one by its absolute URL. Messages that arrive
 * before that import finishes are held and replayed; a failed import is reported as `bootError`.
 */
function startWorker(url) {
  const abs = new URL(url, location.href);
  if (abs.origin === location.origin) return new Worker(abs, { type: 'module' });
  const boot = `const early = []; self.onmessage = (e) => early.push(e);
import(${JSON.stringify(abs.href)}).then(
  () => { for (const e of early) self.onmessage(e); },
  (e) => self.postMessage({ bootError: String((e && e.message) || e) }));`;
  const blob = URL.createObjectURL(new Blob([boot], { type: 'text/javascript' }));
  const worker = new Worker(blob, { type: 'module' });
  setTimeout(() => URL.revokeObjectURL(blob), 60_000); // the Worker has fetched it long before
  return worker;
}

/** A Worker running the engine, with request/answer bookkeeping. */
/** How long a call may go without an answer or a progress report: generous, since a software
 *  WebGPU adapter takes minutes for a large model; `load({ callTimeout })` changes it. */
export const CALL_TIMEOUT_MS = 600_000;

class EngineWorker {
  constructor(url) {
    this.url = new URL(url, location.href);
    this.worker = startWorker(this.url);
    this.pending = new Map();
    this.next = 1;
    this.failed = null;
    this.worker.onmessage = ({ data }) => {
      if (data.bootError) {
        this.fail(new FetchError(`could not load the engine from ${this.url.origin}: ${data.bootError}; ${CORS_HINT}`));
        return;
      }
      const p = this.pending.get(data.id);
      if (!p) return;
      if (data.progress) {
        p.arm();
        p.onProgress?.(data.progress);
        return;
      }
      this.pending.delete(data.id);
      clearTimeout(p.timer);
      if (data.error) p.reject(remoteError(data.error));
      else p.resolve(data.result);
    };
    this.worker.onerror = (e) => {
      const why =
        e.message ||
        (this.url.origin === location.origin
          ? 'it could not start (is www/pkg built? run scripts/build-web.sh)'
          : `it could not be loaded from ${this.url.origin}; ${CORS_HINT}`);
      this.fail(new Error(`the engine worker failed: ${why}`));
    };
  }

  fail(err) {
    this.failed = err;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
  }

  /** Run `op` in the Worker. `timeout` (ms, default `CALL_TIMEOUT_MS`; 0: none) bounds the wait for
   *  an answer, or for the next progress report of a long call: past it the call fails with an
   *  EngineError that asks for a restart (a hung GPU or a runaway loop would otherwise leave
   *  every later call pending). */
  call(op, args = {}, { transfer = [], onProgress, timeout = CALL_TIMEOUT_MS } = {}) {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.next++;
    return new Promise((resolve, reject) => {
      const p = { resolve, reject, onProgress, timer: null };
      p.arm = () => {
        clearTimeout(p.timer);
        if (!(timeout > 0)) return;
        p.timer = setTimeout(() => {
          this.pending.delete(id);
          reject(
            Object.assign(new Error(`the engine did not answer '${op}' within ${timeout / 1000} s; it was restarted`), { name: 'EngineError', restart: true }),
          );
        }, timeout);
      };
      p.arm();
      this.pending.set(id, p);
      this.worker.postMessage({ id, op, args }, transfer);
    });
  }

  /** Stop the Worker at once (even mid-computation); pending calls fail with `why`. */
  terminate(why = new Error('the session was closed')) {
    this.worker.terminate();
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(why);
    }
    this.pending.clear();
  }
}

const inputError = (message) => Object.assign(new Error(message), { name: 'InputError' });

/** The name a model source gives the engine (a URL's or File's name; the engine drops folders and
 *  the extension to make the id `.vgt` files record). */
const sourceName = (source) => (typeof source === 'string' ? source : source?.name) ?? 'model';

/** The engine's arguments for a clip: its payload (RGB bytes, or on WebGPU ImageBitmaps) and size. */
const frameArgs = (f) => {
  const sized = f && f.frames > 0 && f.height > 0 && f.width > 0;
  const size = sized && { frames: f.frames, height: f.height, width: f.width };
  if (
    sized &&
    Array.isArray(f.images) &&
    f.images.length === f.frames &&
    f.images.every((b) => typeof ImageBitmap !== 'undefined' && b instanceof ImageBitmap)
  ) {
    const bad = f.images.findIndex((b) => b.width !== f.width || b.height !== f.height);
    if (bad >= 0) throw inputError(`frame ${bad} is a closed image or not ${f.width}×${f.height}`);
    return { data: f.images, ...size };
  }
  if (sized && f.data instanceof Uint8Array && f.data.length === f.frames * f.height * f.width * 3) return { data: f.data, ...size };
  throw inputError('frames must be { data: Uint8Array of T×H×W×3 RGB bytes, frames, height, width } or { images: T ImageBitmaps, frames, height, width }');
};

const asFrames = (data, [frames, height, width], fps) => ({ data, frames, height, width, fps });

/**
 * The WebGPU adapter's name when it is a software renderer (SwiftShader, llvmpipe, lavapipe, a
 * fallback adapter), else ''. The engine runs there, but slower than WebAssembly on the CPU: on a
 * 2-core machine the bundled clip took 51 s through SwiftShader and a few seconds on the CPU path.
 * Browsers hide the adapter's name from wgpu, so this asks WebGPU itself.
 */
export async function softwareAdapter() {
  try {
    const adapter = await globalThis.navigator?.gpu?.requestAdapter();
    if (!adapter) return '';
    const i = adapter.info ?? {};
    const name = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ');
    if (i.isFallbackAdapter || adapter.isFallbackAdapter) return name || 'a fallback adapter';
    return /swiftshader|llvmpipe|lavapipe|software/i.test(name) ? name : '';
  } catch {
    return '';
  }
}

export class Session {
  /** @private use load() */
  constructor(options) {
    this.options = options;
    this.model = null; // the VQ-VAE's hparams
    this.prior = null; // the GPT prior's hparams, when one is loaded
    this.backend = null; // 'webgpu' | 'cpu'
    this.adapter = '';
    this.fallbackReason = ''; // why 'auto' ended on the CPU
    this.recoveries = 0; // times the GPU device was lost and the session restarted
    this.modelId = options.modelId ?? 'model'; // the name .vgt files give the model (the engine's `id`)
    // how clips reach the model: its resolution (default the file's) and resize filter
    this.inputOptions = { resolution: options.resolution, resize: options.resize };
  }

  async start() {
    const o = this.options;
    this.engine = new EngineWorker(o.workerUrl ?? new URL('./worker.js', import.meta.url));
    // 'auto' takes the faster path: a software WebGPU adapter loses to WebAssembly on the CPU
    let device = o.device ?? 'auto';
    this.softwareAdapter = device === 'auto' ? await softwareAdapter() : '';
    if (this.softwareAdapter) device = 'cpu';
    const { backend, adapter } = await this.engine.call('create', { device, testHooks: !!o.testHooks });
    this.backend = backend;
    this.adapter = backend === 'webgpu' ? adapter : '';
    this.fallbackReason =
      backend !== 'cpu' || o.device === 'cpu'
        ? ''
        : this.softwareAdapter
          ? `WebGPU here is a software renderer (${this.softwareAdapter}), slower than WebAssembly on the CPU; device 'webgpu' forces it`
          : adapter;
    if (this.modelBytes) this.model = await this.engine.call('loadVqvae', { bytes: this.modelBytes.slice(), id: this.modelId, input: this.inputOptions });
    if (this.model) this.modelId = this.model.id;
    if (this.priorBytes) this.prior = await this.engine.call('loadPrior', { bytes: this.priorBytes.slice(), id: this.priorId });
  }

  /** Run a request; when the GPU device is lost, restart the worker once with the same models
   *  and retry. When the engine crashed (an EngineError: a bug, or input it should have refused),
   *  restart it too, so later requests work, but report the error instead of retrying. */
  async call(op, args, opts) {
    await this.restarting; // after cancel(), the fresh Worker has the models again
    opts = { ...opts, timeout: opts?.timeout ?? this.options.callTimeout ?? CALL_TIMEOUT_MS };
    try {
      return await this.engine.call(op, args, opts);
    } catch (e) {
      if (e.restart && !this.recovering) {
        this.engine.terminate();
        this.recoveries++;
        await this.start();
        throw e;
      }
      if (e.name !== 'DeviceLostError' || this.recovering) throw e;
      this.recovering = true;
      try {
        this.engine.terminate();
        this.recoveries++;
        this.options.onDeviceLost?.(e);
        await this.start();
      } finally {
        this.recovering = false;
      }
      return this.engine.call(op, args, opts);
    }
  }

  /** Frames → `{ tokens: Uint32Array, latent: [T', H', W'], input }`, `input` being the
   *  model-sized frames (resized, centre-cropped, first window) the tokens describe. */
  async encode(frames, { forPrior = false } = {}) {
    const r = await this.call('encode', { clip: frameArgs(frames), forPrior });
    return { tokens: r.tokens, latent: r.latent, input: asFrames(r.input, r.size, frames.fps) };
  }

  /** `{ tokens, latent }` → frames. */
  async decode({ tokens, latent }, { forPrior = false } = {}) {
    const r = await this.call('decode', { tokens: Array.from(tokens), latent, forPrior });
    return asFrames(r.video, r.size);
  }

  /** Frames → a `.vgt` token file (Uint8Array; docs/vgt-format.md) naming the loaded model (its
   *  `modelId`) and `fps` (default the frames'). */
  async encodeVgt(frames, { fps } = {}) {
    const r = await this.call('encodeVgt', { clip: frameArgs(frames), fps: fps ?? frames.fps });
    return r.bytes;
  }

  /** A `.vgt` token file (bytes) → `{ video, modelId, tokens, latent }`; refused when the file was
   *  made with another model. A file coded under a prior (version 2) needs that prior loaded
   *  (`vgtHeader(bytes).priorHash` says which); `onProgress(done, total)` as its tokens decode. */
  async decodeVgt(bytes, { onProgress } = {}) {
    const r = await this.call('decodeVgt', { bytes: new Uint8Array(bytes) }, { onProgress: onProgress && ((p) => onProgress(p.done, p.total)) });
    return { video: asFrames(r.video, r.size, r.fps), modelId: r.modelId, tokens: r.tokens, latent: r.latent };
  }

  /** What a `.vgt` file's header says, without decoding it: `{ version, modelId, modelHash,
   *  priorHash (version 2: the prior it is coded under, else null), shape, fps, bitsPerToken }`. */
  vgtHeader(bytes) {
    return this.call('vgtHeader', { bytes: new Uint8Array(bytes) });
  }

  /** A `.vgt` file of the loaded model's tokens (bytes, as `encodeVgt` or `reconstruct` give it)
   *  → the same tokens coded under the loaded prior (version 2, docs/vgt-format.md): about the
   *  prior's bits per token; decoding it needs the same prior. `onProgress(done, total)`. */
  async codeVgt(bytes, { onProgress } = {}) {
    if (!this.prior) throw inputError('no prior loaded: coding tokens needs the prior they are coded under');
    const r = await this.call('codeVgt', { bytes: new Uint8Array(bytes) }, { onProgress: onProgress && ((p) => onProgress(p.done, p.total)) });
    return r.bytes;
  }

  /** Encode and decode: `{ tokens, latent, input, output, psnr[], ssim[], totalMs, encodeMs, decodeMs, vgt }`
   *  (`vgt`: the tokens as a .vgt file naming the loaded model; `encodeMs`/`decodeMs` only on the
   *  CPU path: WebGPU runs both halves in one submission and reads back once). */
  async reconstruct(frames, { timeout } = {}) {
    const r = await this.call('reconstruct', { clip: frameArgs(frames), fps: frames.fps }, { timeout });
    return { ...r, input: asFrames(r.input, r.size, frames.fps), output: asFrames(r.output, r.size, frames.fps) };
  }

  /** The RGB bytes (T×H×W×3) of frames: `frames.data`, or for ImageBitmap frames what the engine
   *  reads from them on the GPU (for exporting or measuring them). */
  async pixels(frames) {
    const clip = frameArgs(frames);
    return clip.data instanceof Uint8Array ? clip.data : (await this.call('readFrames', { clip })).video;
  }

  /** Sample from the prior: `{ seed, temperature, topK, class, prefix (tokens of the first latent
   *  frames to keep), onProgress(done, total, gridSoFar) }` → `{ tokens, latent, video }`. */
  async sample({ onProgress, ...options } = {}) {
    if (!this.prior) throw inputError('no prior loaded: pass prior to load()');
    if (options.prefix) options.prefix = Array.from(options.prefix);
    const r = await this.call('sample', options, { onProgress: onProgress && ((p) => onProgress(p.done, p.total, p.grid)) });
    return { tokens: r.tokens, latent: r.latent, video: asFrames(r.video, r.size) };
  }

  /** Continue a clip: the prior's own VQ-VAE tokenizes `frames`, its first `prefixFrames` latent
   *  frames are kept and the rest sampled. `{ prefixFrames = 1, seed, temperature, topK, class,
   *  onToken(done, total, gridSoFar) }` → `{ tokens, latent, video, prefixFrames, input }` (input:
   *  the model-sized frames the prior's VQ-VAE saw), the video
   *  decoded from the whole grid (its first prefixFrames × the temporal stride frames are the
   *  clip's own, through the tokenizer). `videogpt sample --prefix CLIP --prefix-frames N` is the
   *  same on the command line. */
  async continue(frames, { prefixFrames = 1, onToken, onProgress, ...options } = {}) {
    if (!this.prior) throw inputError('no prior loaded: pass prior to load()');
    const report = onToken ?? onProgress;
    const r = await this.call(
      'continueClip',
      { ...options, clip: frameArgs(frames), prefixFrames },
      { onProgress: report && ((p) => report(p.done, p.total, p.grid)) },
    );
    return {
      tokens: r.tokens,
      latent: r.latent,
      video: asFrames(r.video, r.size),
      prefixFrames: r.prefixFrames,
      input: asFrames(r.input, r.inputSize, frames.fps),
    };
  }

  /** Stop what the engine is doing (a long sample, a reconstruction): the Worker is stopped
   *  mid-computation, its pending calls fail with a CancelledError, and a fresh one is started
   *  with the same models, so the session stays usable (calls made meanwhile wait for it). */
  async cancel() {
    if (!this.engine || this.restarting) return this.restarting;
    this.engine.terminate(Object.assign(new Error('cancelled'), { name: 'CancelledError' }));
    this.restarting = this.start().finally(() => {
      this.restarting = null;
    });
    return this.restarting;
  }

  /** Replace the VQ-VAE (URL, File or bytes, as for load()); returns its hparams. `resolution`
   *  and `resize` as for load() (default: the session's). */
  async loadModel(source, { sha256: expected, onProgress, modelId, resolution, resize } = {}) {
    const bytes = await fetchModel(source, { sha256: expected, onProgress });
    const inputOptions = this.#input({ resolution, resize });
    this.model = await this.call('loadVqvae', { bytes: bytes.slice(), id: modelId ?? sourceName(source), input: inputOptions });
    this.inputOptions = inputOptions;
    this.modelId = this.model.id;
    this.modelBytes = bytes;
    return this.model;
  }

  /** Run the loaded VQ-VAE at another `resolution` (null: the file's) or with another `resize`:
   *  the engine keeps its weights, nothing is sent again. Returns its hparams at the new input. */
  async setInput({ resolution, resize } = {}) {
    const inputOptions = this.#input({ resolution, resize });
    this.model = await this.call('setInput', { input: inputOptions });
    this.inputOptions = inputOptions;
    return this.model;
  }

  #input({ resolution, resize }) {
    return { ...this.inputOptions, ...(resolution !== undefined && { resolution }), ...(resize !== undefined && { resize }) };
  }

  /** Load a GPT prior (with its VQ-VAE under `vqvae.`); returns its hparams. */
  async loadPrior(source, { sha256: expected, onProgress } = {}) {
    const bytes = await fetchModel(source, { sha256: expected, onProgress });
    this.priorId = sourceName(source);
    this.prior = await this.call('loadPrior', { bytes: bytes.slice(), id: this.priorId });
    this.priorBytes = bytes;
    return this.prior;
  }

  /** The GPU runtime's counters (`{ dispatches, buffersCreated, bindGroups, submits, mapWaits,
   *  readbackBytes, byKernel, … }`) since the engine started or the last `gpuStats({ reset: true })`;
   *  null on the CPU path. */
  gpuStats({ reset = false } = {}) {
    return this.call('gpuStats', { reset });
  }

  /** What the engine's Worker holds: `{ wasmBytes, jsHeapBytes }` (the wasm linear memory, and
   *  the Worker's JS heap after a GC where the browser reports it, else null); for soak tests. */
  memory() {
    return this.call('memory');
  }

  /** Live mode (www/live.js): reconstruct `source` (a MediaStreamTrack, or an async iterator of
   *  `{ frame, width, height, close }`) chunk by chunk; `{ onChunk, onError, context }`. Returns
   *  `{ stats, stop(), done }`; frames the engine cannot keep up with are dropped and counted. */
  async live(source, options) {
    const { live } = await import('./live.js');
    return live(this, source, options);
  }

  /** Stop the worker and free its GPU memory. */
  close() {
    this.engine?.terminate();
  }
}

/**
 * Start a session: `{ model, prior, device = 'auto', sha256, priorSha256, onProgress }`.
 * `model`/`prior`: a URL, File, Blob or bytes of a .safetensors (prior: a GPT with its VQ-VAE
 * under `vqvae.`). `device`: 'auto' (WebGPU when the browser has a hardware adapter, else the
 * CPU, with `session.fallbackReason` saying why: no adapter, or a software one such as SwiftShader,
 * which is slower than the CPU path), 'webgpu' (even a software adapter) or 'cpu'. `onProgress(stage, done, total)` reports
 * downloads ('model', 'prior') and startup ('engine'). `resolution`: run the VQ-VAE at this size
 * instead of its file's (a multiple of its spatial stride; the weights work at any size).
 * `resize`: 'antialias' (default, what our models are trained on) or 'videogpt' (VideoGPT's own
 * preprocess exactly). `callTimeout`: ms a call may go without an answer or progress before it
 * fails with an EngineError and the engine restarts (default 10 minutes; 0: never).
 */
export async function load({
  model,
  prior,
  device = 'auto',
  sha256: modelSha,
  priorSha256,
  onProgress = () => {},
  onDeviceLost,
  workerUrl,
  modelId,
  resolution,
  resize,
  callTimeout,
  testHooks,
} = {}) {
  if (!model && !prior) throw inputError('load() needs a model or a prior');
  const s = new Session({
    device,
    onDeviceLost,
    workerUrl,
    resolution,
    resize,
    callTimeout,
    testHooks,
    modelId: modelId ?? sourceName(model),
  });
  if (model) s.modelBytes = await fetchModel(model, { sha256: modelSha, onProgress: (d, t) => onProgress('model', d, t) });
  if (prior) s.priorBytes = await fetchModel(prior, { sha256: priorSha256, onProgress: (d, t) => onProgress('prior', d, t) });
  onProgress('engine', 0, 1);
  try {
    await s.start();
  } catch (e) {
    s.close();
    throw e;
  }
  onProgress('engine', 1, 1);
  return s;
}
