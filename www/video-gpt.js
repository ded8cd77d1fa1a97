// <video-gpt>: a VideoGPT clip in any page, decoded on the reader's machine.
//
//   <script type="module" src="www/video-gpt.js"></script>
//   <video-gpt model="models/natural-64.safetensors" tokens="clip.vgt" autoplay loop controls></video-gpt>
//
// Attributes: `model` (URL of the VQ-VAE), `tokens` (URL of a .vgt file, or the file inline as
// base64url), `prior` (URL of the GPT prior a compressed .vgt file is coded under; fetched like
// the model, and only for such a file), `src` (a video to reconstruct here instead), `compare` (with `src`: the original
// beside the reconstruction), `resolution` (with `src`: run the model at this size instead of its
// file's, e.g. 128), `device` (`auto`, the default: WebGPU on a hardware adapter, else the CPU;
// `webgpu` or `cpu` to force one), `autoplay`, `loop`, `controls`, `fps`, `poster` (an image shown until
// the clip is decoded, and instead of it where it cannot be). Nothing loads until the
// element is on screen; elements with the same model share one download and one engine.

import { load } from './videogpt.js';
import { drawFrame, fromBase64Url } from './util.js';

// one session per model URL (and resolution, device and prior), shared by every element on the page
const sessions = new Map();
export function sharedSession(model, resolution, device = 'auto', prior = null) {
  const url = new URL(model, location.href).href;
  const priorUrl = prior && new URL(prior, location.href).href;
  const key = `${url} ${resolution ?? ''} ${device} ${priorUrl ?? ''}`;
  if (!sessions.has(key)) {
    const s = load({ model: url, resolution, device, ...(priorUrl && { prior: priorUrl }) });
    s.catch(() => sessions.delete(key)); // a failed load may be retried by a later element
    sessions.set(key, s);
  }
  return sessions.get(key);
}

const STYLE = `
  :host { display: inline-block; position: relative; font: 13px/1.4 system-ui, sans-serif; color: #222; }
  .frames { display: flex; gap: 4px; }
  img { width: var(--video-gpt-size, 256px); height: var(--video-gpt-size, 256px); object-fit: cover; display: block; }
  canvas { width: var(--video-gpt-size, 256px); height: var(--video-gpt-size, 256px); image-rendering: pixelated; background: #111; display: block; }
  .bar { display: flex; gap: 6px; align-items: center; margin-top: 4px; }
  button { font: inherit; padding: 1px 8px; }
  .status { color: #555; }
  .error { color: #b00020; }
  [hidden] { display: none !important; }
`;

export class VideoGptElement extends HTMLElement {
  static observedAttributes = ['model', 'tokens', 'prior', 'src', 'resolution', 'device'];

  constructor() {
    super();
    const root = this.attachShadow({ mode: 'open' });
    root.innerHTML = `<style>${STYLE}</style>
      <div class="frames"><img part="poster" alt="" hidden><canvas part="original" hidden></canvas><canvas part="video"></canvas></div>
      <div class="bar"><button part="play" hidden>Pause</button><span class="status" part="status">waiting to be visible…</span></div>`;
    this.canvas = root.querySelectorAll('canvas')[1];
    this.poster = root.querySelector('img');
    this.originalCanvas = root.querySelectorAll('canvas')[0];
    this.statusLine = root.querySelector('.status');
    this.button = root.querySelector('button');
    this.button.onclick = () => (this.playing ? this.pause() : this.play());
    /** The decoded clip (RGB frames), once there is one; `original` with `src`. */
    this.frames = null;
    this.original = null;
    this.state = 'idle'; // idle | loading | ready | error
  }

  connectedCallback() {
    this.showPoster(true);
    // lazy: nothing is fetched until the element is (nearly) on screen
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) {
          this.observer.disconnect();
          this.render();
        }
      },
      { rootMargin: '200px' },
    );
    this.observer.observe(this);
  }

  disconnectedCallback() {
    this.observer?.disconnect();
    this.pause();
  }

  attributeChangedCallback() {
    if (this.state !== 'idle') this.render();
  }

  /** The poster in place of the player (before decoding, and where decoding fails). */
  showPoster(on) {
    const url = this.getAttribute('poster');
    this.poster.hidden = !(on && url);
    this.canvas.hidden = !!(on && url);
    if (on && url) this.poster.src = url;
  }

  status(text, error = false) {
    this.statusLine.textContent = text;
    this.statusLine.className = error ? 'error' : 'status';
  }

  async render() {
    this.run = (this.run ?? 0) + 1;
    const run = this.run;
    this.state = 'loading';
    this.pause();
    this.dispatchEvent(new Event('loadstart'));
    try {
      const model = this.getAttribute('model');
      if (!model) throw new Error('no model attribute');
      if (typeof WebAssembly === 'undefined') throw new Error('this browser runs no WebAssembly');
      this.status('loading the model…');
      const resolution = this.hasAttribute('resolution') ? Number(this.getAttribute('resolution')) : undefined;
      if (resolution !== undefined && !(Number.isInteger(resolution) && resolution > 0))
        throw new Error(`resolution must be a whole number of pixels, not ${this.getAttribute('resolution')}`);
      const device = this.getAttribute('device') ?? 'auto';
      if (!['auto', 'webgpu', 'cpu'].includes(device)) throw new Error(`device must be auto, webgpu or cpu, not ${device}`);
      let session = await sharedSession(model, resolution, device);
      let clip;
      const tokens = this.getAttribute('tokens');
      const src = this.getAttribute('src');
      if (tokens) {
        this.status('decoding…');
        const bytes = /[./:]/.test(tokens) ? await fetchBytes(tokens) : fromBase64Url(tokens.trim());
        const { priorHash } = await session.vgtHeader(bytes);
        if (priorHash) {
          // tokens coded under a prior: decoding computes the prior's probabilities token by token
          const prior = this.getAttribute('prior');
          if (!prior) throw new Error(`these tokens are coded under prior ${priorHash}: give its URL as the prior attribute`);
          this.status('loading the prior…');
          session = await sharedSession(model, resolution, device, prior);
        }
        const onProgress = (done, total) => this.status(`decoding… ${Math.round((100 * done) / total)}%`);
        ({ video: clip } = await session.decodeVgt(bytes, { onProgress }));
      } else if (src) {
        this.status('reconstructing…');
        const { decodeVideoFile } = await import('./media.js');
        const frames = await decodeVideoFile(await fetchBytes(src, true), { maxFrames: session.model.sequenceLength, images: session.backend === 'webgpu' });
        const r = await session.reconstruct(frames).finally(() => {
          for (const b of frames.images ?? []) b.close();
        });
        clip = r.output;
        this.original = r.input;
      } else {
        throw new Error('give tokens or src');
      }
      if (run !== this.run) return; // attributes changed meanwhile
      this.frames = clip;
      this.fps = Number(this.getAttribute('fps')) || clip.fps || 8;
      this.originalCanvas.hidden = !(this.original && this.hasAttribute('compare'));
      this.index = 0;
      this.showPoster(false);
      this.show();
      this.state = 'ready';
      this.status(`${clip.frames} frames, ${clip.width}×${clip.height}, decoded here on ${session.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}`);
      this.button.hidden = !this.hasAttribute('controls');
      if (this.hasAttribute('autoplay')) this.play();
      this.dispatchEvent(new Event('load'));
    } catch (e) {
      if (run !== this.run) return;
      this.state = 'error';
      this.button.hidden = true;
      this.showPoster(true);
      this.status(`could not show this clip: ${e.message}`, true);
      this.dispatchEvent(new CustomEvent('error', { detail: e }));
    }
  }

  show() {
    drawFrame(this.canvas, this.frames, this.index);
    if (!this.originalCanvas.hidden) drawFrame(this.originalCanvas, this.original, this.index % this.original.frames);
  }

  play() {
    if (!this.frames) return;
    this.playing = true;
    this.button.textContent = 'Pause';
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (this.index + 1 >= this.frames.frames && !this.hasAttribute('loop')) {
        this.pause();
        return;
      }
      this.index = (this.index + 1) % this.frames.frames;
      this.show();
    }, 1000 / this.fps);
  }

  pause() {
    this.playing = false;
    clearInterval(this.timer);
    this.button.textContent = 'Play';
  }
}

async function fetchBytes(url, asBuffer = false) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  const b = await r.arrayBuffer();
  return asBuffer ? b : new Uint8Array(b);
}

if (!customElements.get('video-gpt')) customElements.define('video-gpt', VideoGptElement);
