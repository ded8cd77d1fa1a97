// The engine's home: a module Worker holding one wasm Engine (one GPU device and its models), so
// that encoding, decoding and sampling never block the page. Requests are `{ id, op, args }`;
// answers `{ id, result }` or `{ id, error: { name, message } }`; sampling also posts
// `{ id, progress }`. Requests run one at a time, in order: GPU work from two requests never
// interleaves.

import init, { Engine } from './pkg/videogpt.js';

let engine = null;
let initError = null;
let queue = init().catch((e) => { initError = e; });

const typed = (x) => ArrayBuffer.isView(x) ? [x.buffer] : [];

function transferables(result) {
  if (!result || typeof result !== 'object') return [];
  if (ArrayBuffer.isView(result)) return [result.buffer];
  return Object.values(result).flatMap(typed);
}

async function handle(id, op, args) {
  if (initError) {
    const cross = new URL(import.meta.url).origin !== self.location.origin;
    throw Object.assign(new Error(`the engine's WebAssembly could not be loaded from ${new URL('./pkg/', import.meta.url).href}: ${initError.message ?? initError}`
      + (/Content.Security.Policy/i.test(String(initError.message ?? initError))
        ? '; the page\'s Content-Security-Policy must allow \'wasm-unsafe-eval\' in script-src (see the README)'
        : cross ? '; a host serving videogpt-web to pages on other origins must send "Access-Control-Allow-Origin: *" (and .wasm as application/wasm)' : '')),
    { name: 'FetchError' });
  }
  if (op === 'create') {
    engine = await Engine.create(args.device);
    return { backend: engine.backend, adapter: engine.adapter };
  }
  if (!engine) throw Object.assign(new Error('the engine is not started'), { name: 'StateError' });
  switch (op) {
    case 'loadVqvae': return engine.loadVqvae(new Uint8Array(args.bytes), args.options ?? {});
    case 'loadPrior': return engine.loadPrior(new Uint8Array(args.bytes), args.vqvae ? new Uint8Array(args.vqvae) : undefined);
    case 'encode': return engine.encode(args.data, args.frames, args.height, args.width, !!args.forPrior);
    case 'decode': return engine.decode(args.tokens, ...args.latent, !!args.forPrior);
    case 'reconstruct': return engine.reconstruct(args.data, args.frames, args.height, args.width, args.modelId ?? 'model', args.fps ?? 0);
    case 'encodeVgt': return { bytes: await engine.encodeVgt(args.data, args.frames, args.height, args.width, args.modelId, args.fps ?? 0) };
    case 'decodeVgt': return engine.decodeVgt(args.bytes);
    case 'readFrames': return engine.readFrames(args.data, args.frames, args.height, args.width);
    case 'sample':
      return engine.sample(args.options, (done, total, grid) => self.postMessage({ id, progress: { done, total, grid } }, [grid.buffer]));
    case 'loseDevice': return engine.loseDevice();
    default: throw new Error(`unknown request ${op}`);
  }
}

self.onmessage = ({ data: { id, op, args } }) => {
  queue = queue.then(async () => {
    try {
      const result = await handle(id, op, args);
      self.postMessage({ id, result }, transferables(result));
    } catch (e) {
      self.postMessage({ id, error: { name: e?.name ?? 'Error', message: e?.message ?? String(e) } });
    }
  });
};
