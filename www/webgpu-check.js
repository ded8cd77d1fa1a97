// Tells the visitor whether this browser exposes a WebGPU adapter, and which limits matter to the
// engine (the largest storage buffer a kernel can bind bounds the clip size on the GPU path).
const out = document.getElementById('webgpu');

async function check() {
  if (!('gpu' in navigator)) {
    out.className = 'warn';
    out.textContent = 'WebGPU is not available in this browser: the engine will run on the CPU (slower).';
    return;
  }
  const adapter = await navigator.gpu.requestAdapter();
  if (!adapter) {
    out.className = 'warn';
    out.textContent = 'WebGPU is present but no GPU adapter was offered: the engine will run on the CPU (slower).';
    return;
  }
  const info = adapter.info || {};
  const mib = (adapter.limits.maxStorageBufferBindingSize / 2 ** 20).toFixed(0);
  out.className = 'ok';
  out.textContent = `WebGPU adapter: ${info.vendor || 'unknown vendor'} ${info.architecture || ''} ` +
    `(largest storage buffer ${mib} MiB, shader-f16 ${adapter.features.has('shader-f16') ? 'yes' : 'no'}).`;
}

check().catch((e) => {
  out.className = 'warn';
  out.textContent = `WebGPU check failed: ${e.message}`;
});
