//! Buffers reused across calls. Every activation, staging and per-call upload buffer comes from a
//! pool keyed by (size, usage) and goes back to it when its owner drops it, so a steady stream of
//! same-shaped chunks or sampled tokens creates no buffers after the first: in a browser a dropped
//! buffer is only freed when garbage collection runs, and a live stream would otherwise pile up
//! GPU memory until the device is lost. Reuse is safe because wgpu orders the work of one queue:
//! a buffer handed out again is only written by work recorded after the work that read it.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ops::Deref;
use std::rc::{Rc, Weak};

/// Bytes of idle buffers the pool keeps; past this a returned buffer is dropped instead, so the
/// pool of a page that changed resolution does not hold the old sizes forever.
const MAX_IDLE_BYTES: u64 = 256 << 20;

#[derive(Default)]
pub(super) struct Pool {
    idle: RefCell<HashMap<(u64, u32), Vec<wgpu::Buffer>>>,
    idle_bytes: Cell<u64>,
}

impl Pool {
    pub(super) fn take(&self, size: u64, usage: wgpu::BufferUsages) -> Option<wgpu::Buffer> {
        let buf = self.idle.borrow_mut().get_mut(&(size, usage.bits()))?.pop()?;
        self.idle_bytes.set(self.idle_bytes.get() - size);
        Some(buf)
    }

    fn put(&self, buf: wgpu::Buffer) {
        let size = buf.size();
        if self.idle_bytes.get() + size > MAX_IDLE_BYTES {
            return;
        }
        self.idle_bytes.set(self.idle_bytes.get() + size);
        self.idle.borrow_mut().entry((size, buf.usage().bits())).or_default().push(buf);
    }
}

/// A GPU buffer: either owned for good (weights) or lent by the pool, to which it returns on drop.
pub struct GpuBuffer {
    buf: Option<wgpu::Buffer>,
    pool: Weak<Pool>,
    /// For a buffer holding an RGB clip: the same clip as RGBA bytes, one word per pixel, written
    /// by the kernel that made the clip (preprocessing, the decoder's last layer), so that the
    /// clip can be read back as bytes without another pass.
    pixels: Option<Box<GpuBuffer>>,
}

impl GpuBuffer {
    pub(super) fn owned(buf: wgpu::Buffer) -> Self {
        GpuBuffer { buf: Some(buf), pool: Weak::new(), pixels: None }
    }

    pub(super) fn lent(buf: wgpu::Buffer, pool: &Rc<Pool>) -> Self {
        GpuBuffer { buf: Some(buf), pool: Rc::downgrade(pool), pixels: None }
    }

    pub(super) fn with_pixels(mut self, pixels: GpuBuffer) -> Self {
        self.pixels = Some(Box::new(pixels));
        self
    }

    pub(super) fn pixels(&self) -> Option<&GpuBuffer> {
        self.pixels.as_deref()
    }
}

impl Deref for GpuBuffer {
    type Target = wgpu::Buffer;
    fn deref(&self) -> &wgpu::Buffer {
        self.buf.as_ref().expect("a GpuBuffer holds its buffer until dropped")
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        if let (Some(buf), Some(pool)) = (self.buf.take(), self.pool.upgrade()) {
            pool.put(buf);
        }
    }
}
