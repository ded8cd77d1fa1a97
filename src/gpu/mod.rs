//! The wgpu backend: a small runtime that owns the device, one compute pipeline per WGSL kernel
//! in `shaders/`, and the buffers. Work is recorded into one command encoder and submitted in
//! batches; activations stay on the GPU between layers and only the result is read back.
//!
//! wgpu reports validation errors and device loss through callbacks; both are captured here and
//! turned into [`Error`]s at the next operation, so a GPU fault never panics the caller.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use crate::backend::{Backend, Codes, Dims, Tensor, Volume};
use crate::nn::{AxialAttention, ChannelAffine, ChannelNorm, Codebook, Conv3d, ConvTranspose3d};
use crate::video::{Resize, Video};
use crate::{bail, Error, Result};

mod frames;
mod params;
mod pool;
mod prior;
mod profile;
pub use frames::GpuFrames;
use params::*;
pub use pool::GpuBuffer;
use pool::Pool;
pub use prior::{GpuPrior, GpuPriorWeights};
pub use profile::Timing;

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

/// The kernel's source with its `const NAME: u32 = …;` declarations set to the host's values, so
/// that every limit and flag the host checks or sets is defined once, here. A declaration the
/// kernel lacks is a bug in this table: it stops the runtime at start-up, in every test.
fn with_constants(name: &str, source: &str, constants: &[(&str, u32)]) -> String {
    let mut out = source.to_string();
    for (constant, value) in constants {
        let prefix = format!("const {constant}: u32 = ");
        let Some(start) = out.find(&prefix) else { panic!("{name}.wgsl declares no `{prefix}…;`") };
        let end = start + out[start..].find(';').expect("a WGSL declaration ends with ;");
        out.replace_range(start..end, &format!("{prefix}{value}u"));
    }
    out
}

struct Kernel {
    name: &'static str,
    pipeline: wgpu::ComputePipeline,
    layout: wgpu::BindGroupLayout,
}

/// What the runtime asked of the device since the last `reset_stats`: the counts that decide
/// speed where no GPU timer is at hand (every dispatch is a pass with its own bind group and
/// uniform; every buffer created is an allocation and, in a browser, garbage until collected;
/// every map wait is a round trip to the GPU). `videogpt bench --gpu-stats` prints them per chunk
/// and per sampled token; the JS API's `session.gpuStats()` reads them in a page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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
    /// Dispatches per kernel.
    pub by_kernel: std::collections::BTreeMap<&'static str, u64>,
}

/// A GEMM-shaped kernel built with one tile shape (see the RM/RN note in `shaders/conv3d.wgsl`).
struct TiledKernel {
    kernel: Kernel,
    tile_m: usize,
    tile_n: usize,
}

/// The default 64×64-tile pipeline, a 32×64 one for layers with at most 32 output channels (the
/// residual blocks' C/2 convs) and a 16×128 one for at most 16, so that no tile is mostly idle.
struct TileVariants {
    wide: TiledKernel,
    medium: TiledKernel,
    narrow: TiledKernel,
}

impl TileVariants {
    fn new(device: &wgpu::Device, name: &'static str, source: &str) -> Self {
        const DEFAULT: &str = "const RM: u32 = 4u;\nconst RN: u32 = 4u;";
        assert!(source.contains(DEFAULT), "{name}.wgsl must declare its tile shape as RM/RN");
        let variant = |rm: u32, rn: u32| {
            let source = source.replace(DEFAULT, &format!("const RM: u32 = {rm}u;\nconst RN: u32 = {rn}u;"));
            TiledKernel { kernel: kernel(device, name, &source), tile_m: 16 * rm as usize, tile_n: 16 * rn as usize }
        };
        TileVariants { wide: variant(4, 4), medium: variant(2, 4), narrow: variant(1, 8) }
    }

    fn for_channels(&self, cout: usize) -> &TiledKernel {
        [&self.narrow, &self.medium].into_iter().find(|k| cout <= k.tile_m).unwrap_or(&self.wide)
    }
}

/// One pipeline per kernel, each compiled the first time it runs: a page that only reconstructs
/// never compiles the prior's kernels, and start-up compiles none (shader compilation is slow on
/// software adapters).
struct Kernels {
    device: wgpu::Device,
    conv3d: OnceCell<TileVariants>,
    conv_transpose3d: OnceCell<TileVariants>,
    conv_transpose3d_few: OnceCell<Kernel>,
    affine_relu: OnceCell<Kernel>,
    axial_attention: OnceCell<Kernel>,
    codebook_argmin: OnceCell<Kernel>,
    codebook_lookup: OnceCell<Kernel>,
    gemv: OnceCell<Kernel>,
    embed: OnceCell<Kernel>,
    decode_attention: OnceCell<Kernel>,
    sample_token: OnceCell<Kernel>,
    preprocess: OnceCell<Kernel>,
    rgba_to_rgb: OnceCell<Kernel>,
    channel_norm: OnceCell<Kernel>,
    to_rgba8: OnceCell<Kernel>,
}

/// `kernels.NAME()`: the pipeline, compiled from `shaders/NAME.wgsl` (with the host's constants)
/// on first use.
macro_rules! lazy_kernels {
    ($($name:ident: $ty:ident $(with $consts:expr)?;)*) => {
        impl Kernels {
            fn new(device: wgpu::Device) -> Self {
                Kernels { device, $($name: OnceCell::new(),)* }
            }
            $(
                fn $name(&self) -> &$ty {
                    self.$name.get_or_init(|| {
                        let name = stringify!($name);
                        let source = include_str!(concat!("../../shaders/", stringify!($name), ".wgsl"));
                        #[allow(unused_mut, unused_assignments)]
                        let mut constants: &[(&str, u32)] = &[];
                        $(constants = $consts;)?
                        $ty::build(&self.device, name, &with_constants(name, source, constants))
                    })
                }
            )*
        }
    };
}

lazy_kernels! {
    conv3d: TileVariants with &[("FLAG_RELU", CONV_RELU), ("FLAG_RESIDUAL", CONV_RESIDUAL), ("FLAG_INPUT_NORM", CONV_INPUT_NORM)];
    conv_transpose3d: TileVariants with &[("FLAG_RELU", CONV_RELU), ("FLAG_INPUT_NORM", CONV_INPUT_NORM)];
    conv_transpose3d_few: Kernel with &[("MAX_COUT", FEW_CHANNELS as u32), ("FLAG_RELU", CONV_RELU), ("FLAG_INPUT_NORM", CONV_INPUT_NORM)];
    affine_relu: Kernel;
    axial_attention: Kernel with &[("MAX_LEN", ATTENTION_MAX_LEN as u32), ("MAX_D_HEAD", ATTENTION_MAX_D_HEAD as u32)];
    codebook_argmin: Kernel with &[("MAX_DIM", ARGMIN_MAX_DIM as u32)];
    codebook_lookup: Kernel;
    gemv: Kernel with &[("FLAG_BIAS", GEMV_BIAS), ("FLAG_GELU2", GEMV_GELU2), ("FLAG_RESIDUAL", GEMV_RESIDUAL), ("FLAG_NORM", GEMV_NORM), ("FLAG_SPLIT3", GEMV_SPLIT3)];
    embed: Kernel;
    decode_attention: Kernel;
    sample_token: Kernel;
    preprocess: Kernel;
    rgba_to_rgb: Kernel;
    channel_norm: Kernel;
    to_rgba8: Kernel;
}

impl Kernel {
    fn build(device: &wgpu::Device, name: &'static str, source: &str) -> Self {
        kernel(device, name, source)
    }
}

impl TileVariants {
    fn build(device: &wgpu::Device, name: &'static str, source: &str) -> Self {
        TileVariants::new(device, name, source)
    }
}

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

fn kernel(device: &wgpu::Device, name: &'static str, source: &str) -> Kernel {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(name), source: wgpu::ShaderSource::Wgsl(source.into()) });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let layout = pipeline.get_bind_group_layout(0);
    Kernel { name, pipeline, layout }
}

/// Workgroups for `n` items of `per_group` each, split over x and y to respect the per-dimension
/// limit; returns (groups_x, groups_y).
fn grid(n: usize, per_group: usize, max_dim: u32) -> Result<(u32, u32)> {
    let groups = n.div_ceil(per_group).max(1);
    let x = groups.min(max_dim as usize / 2);
    let y = groups.div_ceil(x);
    if y > max_dim as usize {
        bail!(Gpu, "{n} items exceed the adapter's dispatch limit");
    }
    Ok((x as u32, y as u32))
}

impl Gpu {
    /// The first adapter the platform offers (Vulkan/Metal/DX12 natively, WebGPU in a browser;
    /// `WGPU_BACKEND`/`WGPU_ADAPTER_NAME` pick one natively).
    pub async fn new() -> Result<Self> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
        // compute needs no GL: skip probing it (it only adds noise where there is no display)
        desc.backends = wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY);
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| {
                if cfg!(target_arch = "wasm32") {
                    Error::Gpu(format!("this browser offers no WebGPU adapter ({e}): WebGPU is off, unsupported here, or the GPU is blocklisted"))
                } else {
                    Error::Gpu(format!(
                        "no GPU adapter found ({e}); on Linux without a GPU install a software Vulkan driver (Debian: mesa-vulkan-drivers), or use the CPU backend (--device cpu)"
                    ))
                }
            })?;
        let limits = adapter.limits();
        // the kernels use 256-thread workgroups and up to 9.2 KiB of workgroup memory
        if limits.max_compute_invocations_per_workgroup < 256 || limits.max_compute_workgroup_storage_size < 16 << 10 {
            bail!(
                Gpu,
                "the adapter allows {} threads and {} bytes of shared memory per workgroup; the kernels need 256 and 16384 (WebGPU's defaults)",
                limits.max_compute_invocations_per_workgroup,
                limits.max_compute_workgroup_storage_size
            );
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("videogpt"),
                required_limits: limits.clone(),
                // timestamps for `bench --gpu-stats`, where the adapter has them (costs nothing unused)
                required_features: adapter.features() & wgpu::Features::TIMESTAMP_QUERY,
                ..Default::default()
            })
            .await
            .map_err(|e| Error::Gpu(format!("could not open the GPU device: {e}")))?;
        let error = Arc::new(Mutex::new(None));
        let lost = Arc::new(Mutex::new(None));
        {
            let error = error.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                error.lock().unwrap().get_or_insert_with(|| e.to_string());
            }));
            let lost = lost.clone();
            device.set_device_lost_callback(move |reason, msg| {
                lost.lock().unwrap().get_or_insert_with(|| format!("{reason:?}: {msg}"));
            });
        }
        let kernels = Kernels::new(device.clone());
        let gpu = Gpu {
            device,
            queue,
            limits,
            adapter: adapter.get_info(),
            kernels,
            encoder: RefCell::new(None),
            recorded: Cell::new(0),
            error,
            lost,
            stats: Default::default(),
            pool: Default::default(),
            uniforms: Default::default(),
            resize_tables: Default::default(),
            levels: OnceCell::new(),
            unused_outputs: OnceCell::new(),
            frame_texture: Default::default(),
            profile: Default::default(),
        };
        gpu.check()?;
        Ok(gpu)
    }

    /// "name (backend)" of the adapter in use.
    /// Destroy the device as a driver reset would; later work fails with `Error::DeviceLost`
    /// (for tests of the callers' recovery).
    pub fn destroy(&self) {
        self.device.destroy();
    }

    pub fn describe(&self) -> String {
        let a = &self.adapter;
        // browsers hide the adapter's name; say what they do tell
        let name = [&a.name, &a.driver, &a.driver_info].into_iter().find(|s| !s.is_empty()).cloned().unwrap_or_else(|| {
            if a.vendor != 0 {
                format!("GPU vendor {:#06x}", a.vendor)
            } else {
                "unnamed adapter".into()
            }
        });
        let backend = if a.backend == wgpu::Backend::BrowserWebGpu { "browser WebGPU".to_string() } else { format!("{:?}", a.backend) };
        format!("{name} ({backend})")
    }

    /// The counters since the device opened (or the last `reset_stats`).
    pub fn stats(&self) -> GpuStats {
        self.stats.borrow().clone()
    }

    pub fn reset_stats(&self) {
        *self.stats.borrow_mut() = GpuStats::default();
    }

    fn count_flops(&self, executed: usize, useful: usize) {
        if let Some(entry) = self.profile.borrow_mut().as_mut().and_then(|p| p.entries.last_mut()) {
            entry.flops = useful as u64;
        }
        let mut s = self.stats.borrow_mut();
        s.flops_executed += executed as u64;
        s.flops_useful += useful as u64;
    }

    fn count_buffer(&self, bytes: u64) {
        let mut s = self.stats.borrow_mut();
        s.buffers_created += 1;
        s.bytes_created += bytes;
    }

    /// Turn a captured validation error or device loss into an `Err`.
    fn check(&self) -> Result<()> {
        if let Some(m) = self.lost.lock().unwrap().clone() {
            return Err(Error::DeviceLost(m));
        }
        if let Some(m) = self.error.lock().unwrap().take() {
            bail!(Gpu, "{m}");
        }
        Ok(())
    }

    fn check_size(&self, bytes: u64, what: &str) -> Result<()> {
        let max = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size);
        if bytes > max {
            bail!(Gpu, "{what} needs a {} MiB buffer, over this adapter's {} MiB limit; use a shorter clip or a lower resolution", bytes >> 20, max >> 20);
        }
        Ok(())
    }

    /// A buffer from the pool (contents undefined: every caller writes before it reads), or a new
    /// one when the pool has none of this size.
    fn pooled(&self, bytes: u64, usage: wgpu::BufferUsages, what: &str) -> Result<GpuBuffer> {
        self.check_size(bytes, what)?;
        let buf = match self.pool.take(bytes, usage) {
            Some(buf) => buf,
            None => {
                self.count_buffer(bytes);
                self.device.create_buffer(&wgpu::BufferDescriptor { label: Some(what), size: bytes, usage, mapped_at_creation: false })
            }
        };
        Ok(GpuBuffer::lent(buf, &self.pool))
    }

    fn storage(&self, floats: usize, what: &str) -> Result<GpuBuffer> {
        self.pooled((floats.max(1) * 4) as u64, STORAGE, what)
    }

    /// A buffer of its own holding `bytes` (weights: they live as long as the model).
    fn upload_bytes(&self, bytes: &[u8], what: &str) -> Result<GpuBuffer> {
        self.check_size(bytes.len() as u64, what)?;
        let padded;
        let contents = if bytes.is_empty() {
            padded = [0u8; 4];
            &padded[..]
        } else {
            bytes
        };
        self.count_buffer(contents.len() as u64);
        Ok(GpuBuffer::owned(self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor { label: Some(what), contents, usage: STORAGE })))
    }

    /// A pooled buffer holding `bytes`, for per-call input (frames, codes, a run's state). What was
    /// recorded so far is submitted first: a queued write lands before the next submission's work,
    /// so it must not overtake work still unsubmitted that used the buffer's last contents.
    fn upload_transient(&self, bytes: &[u8], what: &str) -> Result<GpuBuffer> {
        let size = (bytes.len().max(1)).next_multiple_of(4) as u64;
        let buf = self.pooled(size, STORAGE, what)?;
        self.submit();
        if bytes.len().is_multiple_of(4) {
            self.queue.write_buffer(&buf, 0, bytes);
        } else {
            let mut padded = bytes.to_vec();
            padded.resize(size as usize, 0);
            self.queue.write_buffer(&buf, 0, &padded);
        }
        Ok(buf)
    }

    /// Stand-ins for writable bindings a dispatch leaves unused (see `unused_outputs`).
    fn unused_outputs(&self) -> Result<&(GpuBuffer, GpuBuffer)> {
        if let Some(pair) = self.unused_outputs.get() {
            return Ok(pair);
        }
        let pair = (self.upload_bytes(&[0; 4], "unused")?, self.upload_bytes(&[0; 4], "unused")?);
        Ok(self.unused_outputs.get_or_init(|| pair))
    }

    /// The uniform holding `words` (padded to 16 bytes), made the first time these words are asked for.
    fn uniform(&self, params: &[u32]) -> wgpu::Buffer {
        // padded to whole 16-byte rows; looked up without allocating (every kernel's parameters
        // fit in 64 words), copied into the cache only when new
        let len = params.len().div_ceil(4).max(1) * 4;
        let mut padded = [0u32; 64];
        let words: Vec<u32>;
        let key: &[u32] = if len <= padded.len() {
            padded[..params.len()].copy_from_slice(params);
            &padded[..len]
        } else {
            words = params.iter().copied().chain(std::iter::repeat(0)).take(len).collect();
            &words
        };
        let mut cache = self.uniforms.borrow_mut();
        if let Some(buf) = cache.get(key) {
            return buf.clone();
        }
        let words = key.to_vec();
        if cache.len() >= MAX_CACHED_UNIFORMS {
            cache.clear();
        }
        self.count_buffer((words.len() * 4) as u64);
        let buf = self.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: bytemuck::cast_slice(&words),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        cache.insert(words, buf.clone());
        buf
    }

    /// Record one dispatch: `params` become the uniform at binding 0, `buffers` bindings 1.. .
    fn dispatch(&self, k: &Kernel, params: &impl bytemuck::Pod, buffers: &[&wgpu::Buffer], groups: (u32, u32, u32)) -> Result<()> {
        self.check()?;
        let max = self.limits.max_compute_workgroups_per_dimension;
        if groups.0 > max || groups.1 > max || groups.2 > max {
            bail!(Gpu, "dispatch of {groups:?} workgroups exceeds the adapter limit {max}; use a smaller clip");
        }
        let uniform = self.uniform(bytemuck::cast_slice(std::slice::from_ref(params)));
        let mut entries = vec![wgpu::BindGroupEntry { binding: 0, resource: uniform.as_entire_binding() }];
        entries.extend(buffers.iter().enumerate().map(|(i, b)| wgpu::BindGroupEntry { binding: i as u32 + 1, resource: b.as_entire_binding() }));
        let bind_group = self.device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout: &k.layout, entries: &entries });
        {
            let mut s = self.stats.borrow_mut();
            s.bind_groups += 1;
            s.dispatches += 1;
            s.passes += 1;
            *s.by_kernel.entry(k.name).or_default() += 1;
        }
        let mut slot = self.encoder.borrow_mut();
        let encoder = slot.get_or_insert_with(|| self.device.create_command_encoder(&Default::default()));
        {
            let mut profile = self.profile.borrow_mut();
            let timestamps = profile.as_mut().and_then(|p| {
                let (begin, end) = p.next(k.name)?;
                Some(wgpu::ComputePassTimestampWrites { query_set: &p.set, beginning_of_pass_write_index: Some(begin), end_of_pass_write_index: Some(end) })
            });
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: timestamps });
            pass.set_pipeline(&k.pipeline);
            pass.set_bind_group(0, &bind_group, &[]);
            pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        }
        drop(slot);
        self.recorded.set(self.recorded.get() + 1);
        if self.recorded.get() >= DISPATCHES_PER_SUBMIT {
            self.submit();
        }
        Ok(())
    }

    fn upload_u32(&self, data: &[u32], what: &str) -> Result<GpuBuffer> {
        self.upload_transient(bytemuck::cast_slice(data), what)
    }

    /// Record a copy of `words` 4-byte words, in order with the dispatches around it.
    fn copy(&self, src: &wgpu::Buffer, src_word: usize, dst: &wgpu::Buffer, dst_word: usize, words: usize) {
        let mut slot = self.encoder.borrow_mut();
        let encoder = slot.get_or_insert_with(|| self.device.create_command_encoder(&Default::default()));
        encoder.copy_buffer_to_buffer(src, (src_word * 4) as u64, dst, (dst_word * 4) as u64, (words * 4) as u64);
    }

    async fn read_f32(&self, src: &wgpu::Buffer, n: usize) -> Result<Vec<f32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(src, (n * 4) as u64).await?))
    }

    async fn read_u32(&self, src: &wgpu::Buffer, n: usize) -> Result<Vec<u32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(src, (n * 4) as u64).await?))
    }

    /// Submit what has been recorded so far.
    pub fn submit(&self) {
        if let Some(encoder) = self.encoder.borrow_mut().take() {
            self.queue.submit([encoder.finish()]);
            self.stats.borrow_mut().submits += 1;
        }
        self.recorded.set(0);
    }

    async fn read_bytes(&self, src: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        self.read_parts(&[(src, bytes)]).await
    }

    /// The first `bytes` of each buffer (a multiple of 4), one after another, through one staging
    /// buffer and one wait.
    async fn read_parts(&self, parts: &[(&wgpu::Buffer, u64)]) -> Result<Vec<u8>> {
        let total: u64 = parts.iter().map(|p| p.1).sum();
        {
            let mut s = self.stats.borrow_mut();
            s.map_waits += 1;
            s.readback_bytes += total;
        }
        let staging = self.pooled(total.max(4), STAGING, "readback")?;
        {
            let mut slot = self.encoder.borrow_mut();
            let encoder = slot.get_or_insert_with(|| self.device.create_command_encoder(&Default::default()));
            let mut at = 0;
            for &(src, bytes) in parts {
                encoder.copy_buffer_to_buffer(src, 0, &staging, at, bytes);
                at += bytes;
            }
        }
        self.submit();
        let (tx, rx) = futures_channel::oneshot::channel();
        staging.slice(..).map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        #[cfg(not(target_arch = "wasm32"))]
        self.device.poll(wgpu::PollType::wait_indefinitely()).map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
        let mapped = rx.await;
        self.check()?;
        match mapped {
            Ok(Ok(())) => {}
            _ => bail!(Gpu, "reading the result back from the GPU failed"),
        }
        let data = staging.slice(..).get_mapped_range().map_err(|e| Error::Gpu(format!("reading the result back from the GPU failed: {e}")))?[..total as usize]
            .to_vec();
        staging.unmap();
        Ok(data)
    }

    /// `preprocess` of a T×H×W×3 uint8 clip already in a GPU buffer (bytes packed four to a word).
    fn preprocess_rgb(&self, rgb: &wgpu::Buffer, [frames, height, width]: [usize; 3], resolution: usize, resize: Resize) -> Result<Tensor<Gpu>> {
        let plan = crate::video::ResizePlan::for_size([frames, height, width], resolution, None, resize)?;
        // [offset, count] per output row or column, then the (index, weight) pairs they point at
        let taps = |per_output: &[crate::video::Taps]| -> Vec<u32> {
            let mut table = Vec::with_capacity(per_output.len() * 2);
            let mut pairs = Vec::new();
            for t in per_output {
                table.extend([(per_output.len() * 2 + pairs.len()) as u32, t.len() as u32]);
                pairs.extend(t.iter().flat_map(|&(i, w)| [i as u32, w.to_bits()]));
            }
            table.extend(pairs);
            table
        };
        // the tables depend only on the sizes: made once per input size a stream comes in at
        let key = ([frames, height, width], resolution, resize);
        let cached = self.resize_tables.borrow().get(&key).cloned();
        let tables = match cached {
            Some(tables) => tables,
            None => {
                let tables = Rc::new((
                    self.upload_bytes(bytemuck::cast_slice(&taps(&plan.rows)), "resize taps")?,
                    self.upload_bytes(bytemuck::cast_slice(&taps(&plan.cols)), "resize taps")?,
                ));
                let mut cache = self.resize_tables.borrow_mut();
                if cache.len() >= 64 {
                    cache.clear();
                }
                cache.insert(key, tables.clone());
                tables
            }
        };
        let (rows, cols) = (&tables.0, &tables.1);
        let levels = match self.levels.get() {
            Some(levels) => levels,
            None => {
                let levels: Vec<f32> = (0..256).map(|b| b as f32 / 255.0).collect();
                let levels = self.upload_bytes(bytemuck::cast_slice(&levels), "levels")?;
                self.levels.get_or_init(|| levels)
            }
        };
        let dims = Dims::new(3, plan.frames, resolution, resolution);
        let out = self.storage(dims.len(), "preprocessed clip")?;
        let pixels = plan.frames * resolution * resolution;
        let rgba = self.storage(pixels, "preprocessed clip as bytes")?;
        let (gx, gy) = grid(pixels, 256, self.limits.max_compute_workgroups_per_dimension)?;
        let params = PreprocessParams {
            frames: plan.frames as u32,
            height: height as u32,
            width: width as u32,
            res: resolution as u32,
            row_threads: gx * 256,
            ..Default::default()
        };
        self.dispatch(self.kernels.preprocess(), &params, &[rgb, rows, cols, levels, &out, &rgba], (gx, gy, 1))?;
        Ok(Tensor { dims, buf: out.with_pixels(rgba) })
    }
}

impl Gpu {
    /// `codebook_argmin.wgsl`, also writing the codes' rows of `table` when one is given.
    fn argmin(&self, z: &Tensor<Self>, cb: &Codebook<Self>, table: Option<&Codebook<Self>>) -> Result<(Codes<Self>, Option<Tensor<Self>>)> {
        if cb.dim > ARGMIN_MAX_DIM {
            bail!(Gpu, "codebook vectors of {} exceed the kernel's {ARGMIN_MAX_DIM}", cb.dim);
        }
        let n = z.dims.positions();
        let out = self.storage(n, "codes")?;
        let embedded = table.map(|t| self.storage(t.dim * n, "decoder input")).transpose()?;
        let (gx, gy) = grid(n, 1, self.limits.max_compute_workgroups_per_dimension)?;
        let table_dim = table.map_or(0, |t| t.dim);
        let params = CodebookArgminParams {
            dim: cb.dim as u32,
            n_codes: cb.n_codes as u32,
            positions: n as u32,
            groups_x: gx,
            table_dim: table_dim as u32,
            ..Default::default()
        };
        // without a table, stand-ins fill its bindings (the kernel touches neither)
        let (t, e) = match (table, &embedded) {
            (Some(t), Some(e)) => (&t.embeddings, e),
            _ => (&cb.norms, &self.unused_outputs()?.0),
        };
        self.dispatch(self.kernels.codebook_argmin(), &params, &[&z.buf, &cb.embeddings, &cb.norms, &out, t, e], (gx, gy, 1))?;
        self.count_flops(2 * n * cb.n_codes * cb.dim, 2 * n * cb.n_codes * cb.dim);
        let [t_, h, w] = [z.dims.t, z.dims.h, z.dims.w];
        let embedded = match (table, embedded) {
            (Some(t), Some(buf)) => Some(Tensor { dims: Dims::new(t.dim, t_, h, w), buf }),
            _ => None,
        };
        Ok((Codes { dims: [t_, h, w], buf: out }, embedded))
    }

    fn conv3d_fused(
        &self,
        x: &Tensor<Self>,
        norm: Option<&ChannelAffine<Self>>,
        conv: &Conv3d<Self>,
        residual: Option<&Tensor<Self>>,
        relu: bool,
    ) -> Result<Tensor<Self>> {
        let (i, k, s, pad) = (x.dims, conv.kernel, conv.stride, conv.pad_front());
        let o = Dims::new(conv.cout, i.t / s[0], i.h / s[1], i.w / s[2]);
        let out = self.storage(o.len(), "conv3d output")?;
        let flags = if relu { CONV_RELU } else { 0 } | if residual.is_some() { CONV_RESIDUAL } else { 0 } | if norm.is_some() { CONV_INPUT_NORM } else { 0 };
        let [k_t, k_h, k_w] = k.map(|v| v as u32);
        let [s_t, s_h, s_w] = s.map(|v| v as u32);
        let [pad_t, pad_h, pad_w] = pad.map(|v| v as u32);
        #[rustfmt::skip]
        let params = Conv3dParams {
            cin: conv.cin as u32, cout: conv.cout as u32, flags,
            in_t: i.t as u32, in_h: i.h as u32, in_w: i.w as u32,
            out_t: o.t as u32, out_h: o.h as u32, out_w: o.w as u32,
            k_t, k_h, k_w, s_t, s_h, s_w, pad_t, pad_h, pad_w,
            ..Default::default()
        };
        // unused bindings still need a buffer; the bias is read-only and always there
        let res = residual.map_or(&conv.bias, |r| &r.buf);
        let (scale, shift) = norm.map_or((&conv.bias, &conv.bias), |n| (&n.scale, &n.shift));
        let k = self.kernels.conv3d().for_channels(conv.cout);
        let groups = (o.positions().div_ceil(k.tile_n) as u32, conv.cout.div_ceil(k.tile_m) as u32, 1);
        self.dispatch(&k.kernel, &params, &[&x.buf, &conv.weight, &conv.bias, res, &out, scale, shift], groups)?;
        let depth = 2 * conv.cin * conv.kernel.iter().product::<usize>();
        self.count_flops(groups.0 as usize * k.tile_n * groups.1 as usize * k.tile_m * depth, o.positions() * conv.cout * depth);
        Ok(Tensor { dims: o, buf: out })
    }

    fn conv_transpose3d_fused(&self, x: &Tensor<Self>, norm: Option<&ChannelAffine<Self>>, convt: &ConvTranspose3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        let (i, s) = (x.dims, convt.stride);
        let o = Dims::new(convt.cout, i.t * s[0], i.h * s[1], i.w * s[2]);
        let out = self.storage(o.len(), "conv_transpose3d output")?;
        let flags = if relu { CONV_RELU } else { 0 } | if norm.is_some() { CONV_INPUT_NORM } else { 0 };
        let [s_t, s_h, s_w] = s.map(|v| v as u32);
        #[rustfmt::skip]
        let params = ConvTranspose3dParams {
            cin: convt.cin as u32, cout: convt.cout as u32, flags,
            in_t: i.t as u32, in_h: i.h as u32, in_w: i.w as u32,
            s_t, s_h, s_w,
            ..Default::default()
        };
        let (scale, shift) = norm.map_or((&convt.bias, &convt.bias), |n| (&n.scale, &n.shift));
        let classes = (s[0] * s[1] * s[2]) as u32;
        // per class, each output sums over cin × (4/s)³ taps
        let depth = 2 * convt.cin * 64 / classes as usize;
        if convt.cout <= FEW_CHANNELS {
            // one thread per position computes every channel (and, for RGB, the pixel's bytes)
            let rgba = self.storage(o.positions(), "decoded clip as bytes")?;
            let k = self.kernels.conv_transpose3d_few();
            self.dispatch(
                k,
                &ConvTranspose3dFewParams::from(params),
                &[&x.buf, &convt.weight, &convt.bias, &out, scale, shift, &rgba],
                (i.positions().div_ceil(256) as u32, 1, classes),
            )?;
            // four lanes per position, whatever cout is
            self.count_flops(
                i.positions().next_multiple_of(256) * FEW_CHANNELS * depth * classes as usize,
                i.positions() * convt.cout * depth * classes as usize,
            );
            let buf = if convt.cout == 3 { out.with_pixels(rgba) } else { out };
            return Ok(Tensor { dims: o, buf });
        }
        let k = self.kernels.conv_transpose3d().for_channels(convt.cout);
        let groups = (i.positions().div_ceil(k.tile_n) as u32, convt.cout.div_ceil(k.tile_m) as u32, classes);
        self.dispatch(&k.kernel, &params, &[&x.buf, &convt.weight, &convt.bias, &out, scale, shift], groups)?;
        let tiles = groups.0 as usize * k.tile_n * groups.1 as usize * k.tile_m;
        self.count_flops(tiles * depth * classes as usize, i.positions() * convt.cout * depth * classes as usize);
        Ok(Tensor { dims: o, buf: out })
    }
}

impl Backend for Gpu {
    type Buffer = GpuBuffer;
    type IndexBuffer = GpuBuffer;

    fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        self.upload_bytes(bytemuck::cast_slice(data), "weights")
    }

    fn upload_codes(&self, codes: &[u32], dims: [usize; 3]) -> Result<Codes<Self>> {
        Ok(Codes { dims, buf: self.upload_u32(codes, "codes")? })
    }

    fn conv3d(&self, x: &Tensor<Self>, conv: &Conv3d<Self>, residual: Option<&Tensor<Self>>, relu: bool) -> Result<Tensor<Self>> {
        self.conv3d_fused(x, None, conv, residual, relu)
    }

    fn conv3d_normed(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>, conv: &Conv3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        self.conv3d_fused(x, Some(bn), conv, None, relu)
    }

    fn conv_transpose3d(&self, x: &Tensor<Self>, convt: &ConvTranspose3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        self.conv_transpose3d_fused(x, None, convt, relu)
    }

    fn conv_transpose3d_normed(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>, convt: &ConvTranspose3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        self.conv_transpose3d_fused(x, Some(bn), convt, relu)
    }

    fn affine_relu(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>) -> Result<Tensor<Self>> {
        let out = self.storage(x.dims.len(), "batchnorm output")?;
        let (gx, gy) = grid(x.dims.len(), 256, self.limits.max_compute_workgroups_per_dimension)?;
        let params = AffineReluParams { positions: x.dims.positions() as u32, total: x.dims.len() as u32, row_threads: gx * 256, ..Default::default() };
        self.dispatch(self.kernels.affine_relu(), &params, &[&x.buf, &bn.scale, &bn.shift, &out], (gx, gy, 1))?;
        Ok(Tensor { dims: x.dims, buf: out })
    }

    fn channel_norm(&self, x: &Tensor<Self>, norm: &ChannelNorm<Self>, relu: bool, residual: Option<&Tensor<Self>>) -> Result<Tensor<Self>> {
        let out = self.storage(x.dims.len(), "layer norm output")?;
        let n = x.dims.positions();
        let (gx, gy) = grid(n, 256, self.limits.max_compute_workgroups_per_dimension)?;
        let params = ChannelNormParams {
            channels: x.dims.c as u32,
            positions: n as u32,
            row_threads: gx * 256,
            relu: relu as u32,
            residual: residual.is_some() as u32,
            ..Default::default()
        };
        // without a residual the input stands in for it (the kernel does not read it; binding the
        // output twice would alias a writable buffer)
        let res = residual.map_or(&x.buf, |r| &r.buf);
        self.dispatch(self.kernels.channel_norm(), &params, &[&x.buf, &norm.weight, &norm.bias, res, &out], (gx, gy, 1))?;
        Ok(Tensor { dims: x.dims, buf: out })
    }

    fn axial_attention(&self, qkv: &Tensor<Self>, attn: &AxialAttention<Self>) -> Result<Tensor<Self>> {
        let d = qkv.dims;
        let (c, heads) = (attn.channels, attn.n_head);
        let longest = d.t.max(d.h).max(d.w);
        if longest > ATTENTION_MAX_LEN || c / heads > ATTENTION_MAX_D_HEAD {
            bail!(
                Gpu,
                "axial attention over {longest} positions with {} channels per head exceeds the kernel's {ATTENTION_MAX_LEN}/{ATTENTION_MAX_D_HEAD}",
                c / heads
            );
        }
        let out = self.storage(3 * c * d.positions(), "attention output")?;
        let (gx, gy) = grid(d.positions(), 1, self.limits.max_compute_workgroups_per_dimension)?;
        #[rustfmt::skip]
        let params = AxialAttentionParams {
            channels: c as u32, n_head: heads as u32, d_head: (c / heads) as u32, positions: d.positions() as u32,
            t: d.t as u32, h: d.h as u32, w: d.w as u32, groups_x: gx,
        };
        self.dispatch(self.kernels.axial_attention(), &params, &[&qkv.buf, &out], (gx, gy, 3 * heads as u32))?;
        // q·k and the weighted sum of v, per position, over the keys of its three axes
        let flops = 4 * c * d.positions() * (d.t + d.h + d.w);
        self.count_flops(flops, flops);
        Ok(Tensor { dims: Dims { c: 3 * c, ..d }, buf: out })
    }

    fn codebook_argmin(&self, z: &Tensor<Self>, cb: &Codebook<Self>) -> Result<Codes<Self>> {
        Ok(self.argmin(z, cb, None)?.0)
    }

    fn codebook_argmin_lookup(&self, z: &Tensor<Self>, cb: &Codebook<Self>, table: &Codebook<Self>) -> Result<(Codes<Self>, Tensor<Self>)> {
        let (codes, h) = self.argmin(z, cb, Some(table))?;
        Ok((codes, h.expect("the table was given")))
    }

    fn preprocess(&self, video: &crate::video::Video, resolution: usize, resize: Resize) -> Result<Tensor<Self>> {
        let rgb = self.upload_transient(&video.rgb, "video frames")?;
        self.preprocess_rgb(&rgb, [video.frames, video.height, video.width], resolution, resize)
    }

    fn codebook_lookup(&self, codes: &Codes<Self>, cb: &Codebook<Self>) -> Result<Tensor<Self>> {
        let [t, h, w] = codes.dims;
        let dims = Dims::new(cb.dim, t, h, w);
        let out = self.storage(dims.len(), "codebook lookup")?;
        let (gx, gy) = grid(dims.len(), 256, self.limits.max_compute_workgroups_per_dimension)?;
        let params = CodebookLookupParams { dim: cb.dim as u32, n_codes: cb.n_codes as u32, positions: dims.positions() as u32, row_threads: gx * 256 };
        self.dispatch(self.kernels.codebook_lookup(), &params, &[&codes.buf, &cb.embeddings, &out], (gx, gy, 1))?;
        Ok(Tensor { dims, buf: out })
    }

    async fn read_volume(&self, x: &Tensor<Self>) -> Result<Volume> {
        Ok(Volume { dims: x.dims, data: self.read_f32(&x.buf, x.dims.len()).await? })
    }

    async fn read_codes(&self, codes: &Codes<Self>) -> Result<Vec<u32>> {
        self.read_u32(&codes.buf, codes.dims.iter().product()).await
    }

    /// The codes and both clips' bytes come back through one staging buffer: one wait per chunk.
    async fn read_reconstruction(&self, codes: &Codes<Self>, input: &Tensor<Self>, output: &Tensor<Self>) -> Result<(Vec<u32>, Video, Video)> {
        let d = output.dims;
        if input.dims != d || d.c != 3 {
            bail!(Input, "a reconstruction's input {:?} and output {:?} must be the same RGB clip size", input.dims, d);
        }
        let n = d.positions();
        let n_codes: usize = codes.dims.iter().product();
        let (code_bytes, clip_bytes) = ((n_codes * 4) as u64, (n * 4) as u64);
        // the kernels that made the clips wrote their bytes too, unless the input was uploaded as
        // floats: then one to_rgba8 pass packs both
        let bytes = if let (Some(a), Some(b)) = (input.buf.pixels(), output.buf.pixels()) {
            self.read_parts(&[(&codes.buf, code_bytes), (a, clip_bytes), (b, clip_bytes)]).await?
        } else {
            let rgba = self.storage(2 * n, "rgba frames")?;
            let (gx, gy) = grid(2 * n, 256, self.limits.max_compute_workgroups_per_dimension)?;
            self.dispatch(
                self.kernels.to_rgba8(),
                &ToRgba8Params { positions: n as u32, row_threads: gx * 256, ..Default::default() },
                &[&input.buf, &output.buf, &rgba],
                (gx, gy, 1),
            )?;
            self.read_parts(&[(&codes.buf, code_bytes), (&rgba, 2 * clip_bytes)]).await?
        };
        let (code_bytes, pixels) = bytes.split_at(n_codes * 4);
        let clip = |pixels: &[u8]| Video::new(d.t, d.h, d.w, pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect());
        let (a, b) = pixels.split_at(n * 4);
        Ok((bytemuck::pod_collect_to_vec(code_bytes), clip(a)?, clip(b)?))
    }
}
