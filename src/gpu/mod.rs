//! The wgpu backend: a small runtime that owns the device, one compute pipeline per WGSL kernel
//! in `shaders/`, and the buffers. Work is recorded into one command encoder and submitted in
//! batches; activations stay on the GPU between layers and only the result is read back.
//!
//! One concern per file:
//! - `runtime.rs`: the device and its error callbacks, buffers and the pool, uniforms, dispatch,
//!   submission and readback;
//! - `kernels.rs`: the kernel registry (one pipeline per `shaders/*.wgsl`, compiled on first use,
//!   with `#include`s of `shaders/lib/` resolved and the host's constants set);
//! - `stats.rs` and `profile.rs`: what the runtime asked of the device, and GPU timestamps;
//! - `vqvae.rs`: the VQ-VAE's layers (the [`Backend`](crate::backend::Backend) impl), layer by
//!   layer; `prior.rs`: the GPT prior's decoding step; `frames.rs`: frames given as images.
//!
//! wgpu reports validation errors and device loss through callbacks; both are captured here and
//! turned into [`Error`](crate::Error)s at the next operation, so a GPU fault never panics the caller.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use crate::video::Resize;
use crate::{bail, Result};

mod frames;
mod kernels;
mod params;
mod pool;
mod prior;
mod prior_weights;
mod profile;
mod runtime;
mod stats;
mod vqvae;
pub use frames::GpuFrames;
use kernels::Kernels;
pub use pool::GpuBuffer;
use pool::Pool;
pub use prior::GpuPrior;
pub use prior_weights::GpuPriorWeights;
pub use profile::Timing;
pub use stats::GpuStats;

/// Dispatches recorded before the encoder is submitted; keeps queue memory bounded.
const DISPATCHES_PER_SUBMIT: usize = 24;
/// Distinct kernel parameter blocks kept as uniforms: a chunk or a decoding step asks for the same
/// blocks every time, so they are made once; past this many the cache starts over.
const MAX_CACHED_UNIFORMS: usize = 1 << 16;
/// Usage of every storage buffer (activations, weights, uploads).
const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC).union(wgpu::BufferUsages::COPY_DST);
/// Usage of the staging buffers that results are read back through.
const STAGING: wgpu::BufferUsages = wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);
/// Largest axis and head size the attention kernel's workgroup arrays hold.
const ATTENTION_MAX_LEN: usize = 512;
const ATTENTION_MAX_D_HEAD: usize = 512;
/// Largest codebook vector the argmin kernel holds in workgroup memory.
const ARGMIN_MAX_DIM: usize = 1024;
/// Bits of the convolutions' `flags` parameter.
const CONV_RELU: u32 = 1;
const CONV_RESIDUAL: u32 = 2;
const CONV_INPUT_NORM: u32 = 4;
/// Output channels up to which a transposed conv runs one thread per position over all channels
/// (`conv_transpose3d_few.wgsl`) instead of a GEMM tile.
const FEW_CHANNELS: usize = 4;
/// Bits of the GEMV's `flags` parameter (the prior's decode steps).
pub(crate) const GEMV_BIAS: u32 = 1;
pub(crate) const GEMV_GELU2: u32 = 2;
pub(crate) const GEMV_RESIDUAL: u32 = 4;
pub(crate) const GEMV_NORM: u32 = 8;
pub(crate) const GEMV_SPLIT3: u32 = 16;
pub(crate) const GEMV_F16: u32 = 32;

/// (input frames × height × width, resolution, resize) of a clip's resize taps.
type ResizeKey = ([usize; 3], usize, Resize);

pub struct Gpu {
    device: wgpu::Device,
    queue: wgpu::Queue,
    limits: wgpu::Limits,
    pub adapter: wgpu::AdapterInfo,
    kernels: Kernels,
    encoder: RefCell<Option<wgpu::CommandEncoder>>,
    recorded: Cell<usize>,
    error: Arc<Mutex<Option<String>>>,
    lost: Arc<Mutex<Option<String>>>,
    stats: RefCell<GpuStats>,
    pool: Rc<Pool>,
    /// Parameter blocks already uploaded, by content.
    uniforms: RefCell<HashMap<Vec<u32>, wgpu::Buffer>>,
    /// The resize taps of each (input size, resolution, resize) a clip came in at.
    resize_tables: RefCell<HashMap<ResizeKey, Rc<(GpuBuffer, GpuBuffer)>>>,
    levels: OnceCell<GpuBuffer>,
    /// Two 4-byte buffers that stand in for writable bindings a dispatch does not use (a buffer
    /// bound twice as writable would alias), made once rather than per dispatch.
    unused_outputs: OnceCell<(GpuBuffer, GpuBuffer)>,
    /// The texture the last frames given as images went through (reused for the next same size).
    frame_texture: RefCell<Option<wgpu::Texture>>,
    /// Timestamps per dispatch while a profile runs (`profile.rs`).
    profile: RefCell<Option<profile::Profile>>,
}

/// Workgroups for `n` items of `per_group` each, split over x and y to respect the per-dimension
/// limit; returns (groups_x, groups_y).
fn workgroups(n: usize, per_group: usize, max_dim: u32) -> Result<(u32, u32)> {
    let groups = n.div_ceil(per_group).max(1);
    let x = groups.min(max_dim as usize / 2);
    let y = groups.div_ceil(x);
    if y > max_dim as usize {
        bail!(Gpu, "{n} items exceed the adapter's dispatch limit");
    }
    Ok((x as u32, y as u32))
}
