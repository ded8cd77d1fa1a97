// The engine's home: a module Worker holding one wasm Engine (one GPU device and its models), so
// that encoding, decoding and sampling never block the page. Requests are `{ id, op, args }`:
// `op` is one of the engine's operations (`operations()`, src/web/mod.rs) and `args` its request
// object (src/web/requests.rs); the Worker calls `engine[op](args, onProgress)` and knows nothing
// of what each does. Answers are `{ id, result }` or `{ id, error: { name, message } }`; long
// operations also post `{ id, progress }`. Requests run one at a time, in order: GPU work from two
// requests never interleaves. Two requests are the Worker's own: `create` (start the engine) and
// `memory` (what the Worker holds, for soak tests).

import init, { Engine, operations } from './pkg/videogpt.js';

let engine = null;
let initError = null;
// The request running now, and the crash that broke the engine. A Rust panic in wasm is a trap:
// it can escape from inside a future as an uncaught error, leaving that request's Promise
// pending forever. The handlers below answer the request instead, with an EngineError that asks
// the page to restart this Worker (a trapped instance's state cannot be trusted afterwards).
let current = null;
let broken = null;

// the panic's own message (the trap itself only says "unreachable"), as the panic hook logs it
let lastPanic = '';
const consoleError = console.error.bind(console);
console.error = (...parts) => {
  const text = parts.map(String).join(' ');
  if (/panicked at/.test(text)) lastPanic = text.split('\n').filter(Boolean).slice(0, 2).join(': ');
  consoleError(...parts);
};

function crashed(e) {
  broken = broken ?? e;
  if (current !== null) {
    const why = lastPanic || e?.message || String(e);
    self.postMessage({ id: current, error: { name: 'EngineError', message: `the engine crashed (${why}); it restarts for the next request`, restart: true } });
    current = null;
  }
}
self.addEventListener('error', (ev) => {
  ev.preventDefault();
  crashed(ev.error ?? ev.message);
});
self.addEventListener('unhandledrejection', (ev) => {
  ev.preventDefault();
  crashed(ev.reason);
});
// the wasm module's exports (its linear memory, for `memory` requests), and the engine's operations
let wasm = null;
let known = new Set();
let queue = init().then(
  (exports) => {
    wasm = exports;
    known = new Set(operations());
  },
  (e) => {
    initError = e;
  },
);

const typed = (x) => (ArrayBuffer.isView(x) ? [x.buffer] : []);

function transferables(result) {
  if (!result || typeof result !== 'object') return [];
  if (ArrayBuffer.isView(result)) return [result.buffer];
  return Object.values(result).flatMap(typed);
}

async function handle(id, op, args) {
  if (broken) throw Object.assign(new Error(`the engine crashed earlier (${broken?.message ?? broken})`), { name: 'EngineError', restart: true });
  if (initError) {
    const cross = new URL(import.meta.url).origin !== self.location.origin;
    throw Object.assign(
      new Error(
        `the engine's WebAssembly could not be loaded from ${new URL('./pkg/', import.meta.url).href}: ${initError.message ?? initError}` +
          (/Content.Security.Policy/i.test(String(initError.message ?? initError))
            ? "; the page's Content-Security-Policy must allow 'wasm-unsafe-eval' in script-src (see the README)"
            : cross
              ? '; a host serving videogpt-web to pages on other origins must send "Access-Control-Allow-Origin: *" (and .wasm as application/wasm)'
              : ''),
      ),
      { name: 'FetchError' },
    );
  }
  if (op === 'create') {
    engine = await Engine.create(args);
    return { backend: engine.backend, adapter: engine.adapter };
  }
  // what the Worker holds: the wasm linear memory (it only grows) and, where the browser tells,
  // the Worker's JS heap after a collection (Chromium with --js-flags=--expose-gc)
  if (op === 'memory') {
    self.gc?.();
    return { wasmBytes: wasm?.memory?.buffer.byteLength ?? 0, jsHeapBytes: self.performance?.memory?.usedJSHeapSize ?? null };
  }
  if (!engine) throw Object.assign(new Error('the engine is not started'), { name: 'StateError' });
  if (!known.has(op)) throw Object.assign(new Error(`unknown request ${op}: the engine answers ${[...known].join(', ')}`), { name: 'InputError' });
  return engine[op](args ?? {}, (progress) => self.postMessage({ id, progress }, transferables(progress)));
}

self.onmessage = ({ data: { id, op, args } }) => {
  queue = queue.then(async () => {
    current = id;
    try {
      const result = await handle(id, op, args);
      if (current === id) self.postMessage({ id, result }, transferables(result));
    } catch (e) {
      if (e instanceof WebAssembly.RuntimeError)
        crashed(e); // a trap that surfaced here
      else if (current === id) self.postMessage({ id, error: { name: e?.name ?? 'Error', message: e?.message ?? String(e), restart: !!e?.restart } });
    } finally {
      if (current === id) current = null;
    }
  });
};
