//! What the runtime asked of the device, counted as it asks.

use super::Gpu;

/// What the runtime asked of the device since the last `reset_stats`: the counts that decide
/// speed where no GPU timer is at hand (every dispatch is a pass with its own bind group and
/// uniform; every buffer created is an allocation and, in a browser, garbage until collected;
/// every map wait is a round trip to the GPU). `videogpt bench --gpu-stats` prints them per chunk
/// and per sampled token; the JS API's `session.gpuStats()` reads them in a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[cfg_attr(target_arch = "wasm32", derive(serde::Serialize), serde(rename_all = "camelCase"))]
pub struct GpuStats {
    pub dispatches: u64,
    /// Compute passes begun (one per dispatch today).
    pub passes: u64,
    /// Buffers created, uniforms and readback staging included, and their bytes.
    pub buffers_created: u64,
    pub bytes_created: u64,
    pub bind_groups: u64,
    pub submits: u64,
    /// Waits for a buffer mapping (GPU → CPU readbacks), and the bytes they read.
    pub map_waits: u64,
    pub readback_bytes: u64,
    /// Floating-point operations of the convolutions, the codebook search and the attention:
    /// executed (whole tiles, idle rows and columns included) and useful (the layer's own).
    pub flops_executed: u64,
    pub flops_useful: u64,
    /// Bytes of the model's weights the dispatches read (each dispatch counted once for the
    /// weights it uses: convolution kernels and biases, norms, the codebook, the prior's Linear
    /// layers at their stored width): what a step streams from memory at least.
    pub weight_bytes: u64,
    /// Dispatches per kernel.
    pub by_kernel: std::collections::BTreeMap<&'static str, u64>,
}

impl Gpu {
    /// The counters since the device opened (or the last `reset_stats`).
    pub fn stats(&self) -> GpuStats {
        self.stats.borrow().clone()
    }

    pub fn reset_stats(&self) {
        *self.stats.borrow_mut() = GpuStats::default();
    }

    pub(super) fn count_flops(&self, executed: usize, useful: usize) {
        if let Some(entry) = self.profile.borrow_mut().as_mut().and_then(|p| p.entries.last_mut()) {
            entry.flops = useful as u64;
        }
        let mut s = self.stats.borrow_mut();
        s.flops_executed += executed as u64;
        s.flops_useful += useful as u64;
    }

    pub(super) fn count_weight_bytes(&self, bytes: u64) {
        self.stats.borrow_mut().weight_bytes += bytes;
    }

    pub(super) fn count_buffer(&self, bytes: u64) {
        let mut s = self.stats.borrow_mut();
        s.buffers_created += 1;
        s.bytes_created += bytes;
    }
}
