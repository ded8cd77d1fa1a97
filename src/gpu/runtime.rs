//! The runtime: opening the device (and turning its error callbacks into `Err`s), buffers from
//! the pool, uniforms, recording dispatches and copies, submission and readback.

use std::cell::{Cell, OnceCell};
use std::sync::{Arc, Mutex};

use wgpu::util::DeviceExt;

use super::kernels::Kernel;
use super::*;
use crate::Error;

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

    /// Destroy the device as a driver reset would; later work fails with `Error::DeviceLost`
    /// (for tests of the callers' recovery).
    pub fn destroy(&self) {
        self.device.destroy();
    }

    /// The limits the device was opened with (the adapter's own: every one is asked for).
    pub fn limits(&self) -> &wgpu::Limits {
        &self.limits
    }

    /// The optional features the device was opened with (timestamp queries, where the adapter has them).
    pub fn features(&self) -> wgpu::Features {
        self.device.features()
    }

    /// "name (backend)" of the adapter in use.
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

    /// Turn a captured validation error or device loss into an `Err`.
    pub(super) fn check(&self) -> Result<()> {
        if let Some(m) = self.lost.lock().unwrap().clone() {
            return Err(Error::DeviceLost(m));
        }
        if let Some(m) = self.error.lock().unwrap().take() {
            bail!(Gpu, "{m}");
        }
        Ok(())
    }

    pub(super) fn check_size(&self, bytes: u64, what: &str) -> Result<()> {
        let max = self.limits.max_storage_buffer_binding_size.min(self.limits.max_buffer_size);
        if bytes > max {
            bail!(Gpu, "{what} needs a {} MiB buffer, over this adapter's {} MiB limit; use a shorter clip or a lower resolution", bytes >> 20, max >> 20);
        }
        Ok(())
    }

    /// A buffer from the pool (contents undefined: every caller writes before it reads), or a new
    /// one when the pool has none of this size.
    pub(super) fn pooled(&self, bytes: u64, usage: wgpu::BufferUsages, what: &str) -> Result<GpuBuffer> {
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

    pub(super) fn storage(&self, floats: usize, what: &str) -> Result<GpuBuffer> {
        self.pooled((floats.max(1) * 4) as u64, STORAGE, what)
    }

    /// A buffer of its own holding `bytes` (weights: they live as long as the model).
    pub(super) fn upload_bytes(&self, bytes: &[u8], what: &str) -> Result<GpuBuffer> {
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
    pub(super) fn upload_transient(&self, bytes: &[u8], what: &str) -> Result<GpuBuffer> {
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
    pub(super) fn unused_outputs(&self) -> Result<&(GpuBuffer, GpuBuffer)> {
        if let Some(pair) = self.unused_outputs.get() {
            return Ok(pair);
        }
        let pair = (self.upload_bytes(&[0; 4], "unused")?, self.upload_bytes(&[0; 4], "unused")?);
        Ok(self.unused_outputs.get_or_init(|| pair))
    }

    /// The uniform holding `words` (padded to 16 bytes), made the first time these words are asked for.
    pub(super) fn uniform(&self, params: &[u32]) -> wgpu::Buffer {
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
    pub(super) fn dispatch(&self, k: &Kernel, params: &impl bytemuck::Pod, buffers: &[&wgpu::Buffer], groups: (u32, u32, u32)) -> Result<()> {
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

    pub(super) fn upload_u32(&self, data: &[u32], what: &str) -> Result<GpuBuffer> {
        self.upload_transient(bytemuck::cast_slice(data), what)
    }

    /// Record a copy of `words` 4-byte words, in order with the dispatches around it.
    pub(super) fn copy(&self, src: &wgpu::Buffer, src_word: usize, dst: &wgpu::Buffer, dst_word: usize, words: usize) {
        let mut slot = self.encoder.borrow_mut();
        let encoder = slot.get_or_insert_with(|| self.device.create_command_encoder(&Default::default()));
        encoder.copy_buffer_to_buffer(src, (src_word * 4) as u64, dst, (dst_word * 4) as u64, (words * 4) as u64);
    }

    pub(super) async fn read_f32(&self, src: &wgpu::Buffer, n: usize) -> Result<Vec<f32>> {
        Ok(bytemuck::pod_collect_to_vec(&self.read_bytes(src, (n * 4) as u64).await?))
    }

    pub(super) async fn read_u32(&self, src: &wgpu::Buffer, n: usize) -> Result<Vec<u32>> {
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

    pub(super) async fn read_bytes(&self, src: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>> {
        self.read_parts(&[(src, bytes)]).await
    }

    /// The first `bytes` of each buffer (a multiple of 4), one after another, through one staging
    /// buffer and one wait.
    pub(super) async fn read_parts(&self, parts: &[(&wgpu::Buffer, u64)]) -> Result<Vec<u8>> {
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
}
