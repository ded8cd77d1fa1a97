//! GPU timestamps per dispatch, where the adapter has them (`Features::TIMESTAMP_QUERY`): every
//! dispatch is its own compute pass, so a pass's begin and end timestamps time one kernel call.
//! `videogpt bench --gpu-stats` turns them into per-layer GFLOP/s with the useful FLOPs the
//! runtime counts; the first real GPU that runs it fills in the row no machine here can.

use super::Gpu;
use crate::{bail, Result};

/// Passes timed per profile (two timestamps each).
const MAX_PASSES: u32 = 2048;

pub(super) struct Profile {
    pub(super) set: wgpu::QuerySet,
    pub(super) entries: Vec<Entry>,
}

pub(super) struct Entry {
    pub(super) kernel: &'static str,
    pub(super) flops: u64,
}

/// One timed dispatch.
#[derive(Debug, Clone)]
pub struct Timing {
    pub kernel: &'static str,
    /// Useful floating-point operations (0 for kernels the runtime does not count).
    pub flops: u64,
    pub nanoseconds: f64,
}

impl Profile {
    /// The query indices of the next pass, or None once the set is full.
    pub(super) fn next(&mut self, kernel: &'static str) -> Option<(u32, u32)> {
        let i = self.entries.len() as u32;
        if i >= MAX_PASSES {
            return None;
        }
        self.entries.push(Entry { kernel, flops: 0 });
        Some((2 * i, 2 * i + 1))
    }
}

impl Gpu {
    /// Whether this adapter can time passes.
    pub fn has_timestamps(&self) -> bool {
        self.device.features().contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Time every dispatch from now until [`Gpu::finish_profile`] (up to 2,048 of them).
    pub fn start_profile(&self) -> Result<()> {
        if !self.has_timestamps() {
            bail!(Gpu, "this adapter has no timestamp queries");
        }
        self.submit();
        let set = self.device.create_query_set(&wgpu::QuerySetDescriptor { label: Some("profile"), ty: wgpu::QueryType::Timestamp, count: 2 * MAX_PASSES });
        *self.profile.borrow_mut() = Some(Profile { set, entries: Vec::new() });
        Ok(())
    }

    /// The timed dispatches since [`Gpu::start_profile`], in order.
    pub async fn finish_profile(&self) -> Result<Vec<Timing>> {
        let Some(profile) = self.profile.borrow_mut().take() else { bail!(Gpu, "no profile was started") };
        let n = 2 * profile.entries.len() as u32;
        if n == 0 {
            return Ok(Vec::new());
        }
        let bytes = n as u64 * wgpu::QUERY_SIZE as u64;
        let resolved = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: bytes,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        {
            let mut slot = self.encoder.borrow_mut();
            let encoder = slot.get_or_insert_with(|| self.device.create_command_encoder(&Default::default()));
            encoder.resolve_query_set(&profile.set, 0..n, &resolved, 0);
        }
        let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(&self.read_parts(&[(&resolved, bytes)]).await?);
        let period = self.queue.get_timestamp_period() as f64;
        Ok(profile
            .entries
            .iter()
            .zip(ticks.chunks_exact(2))
            .map(|(e, t)| Timing { kernel: e.kernel, flops: e.flops, nanoseconds: t[1].saturating_sub(t[0]) as f64 * period })
            .collect())
    }
}
