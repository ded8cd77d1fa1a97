//! What the engine makes of the frames a page sends: model windows, preprocessed on the device
//! from RGB bytes, or on the GPU from `ImageBitmap`s copied GPU to GPU.

use std::ops::Range;

use web_sys::ImageBitmap;

use super::convert::Frames;
use crate::backend::{Backend, Tensor};
use crate::video::Resize;
use crate::workflow::Tokenizer;
use crate::{bail, Cpu, Gpu, Result};

/// The first model window of a clip, preprocessed on the device (shorter side resized to the
/// model's resolution, centre crop); clips longer than `sequence_length` are cut to it.
pub(super) fn model_input<B: Backend + MaybeGpu>(b: &B, t: &Tokenizer<B>, frames: &Frames) -> Result<Tensor<B>> {
    let (windows, _) = t.windows(frames.count())?;
    window_input(b, t, frames, windows[0].clone())
}

/// The frames of `window`, preprocessed on the device.
pub(super) fn window_input<B: Backend + MaybeGpu>(b: &B, t: &Tokenizer<B>, frames: &Frames, window: Range<usize>) -> Result<Tensor<B>> {
    match frames {
        Frames::Rgb(clip) => t.preprocess(b, clip, window),
        Frames::Images(images) => b.preprocess_images(&images[window], t.resolution, t.resize),
    }
}

/// Frames given as images, which only the GPU backend takes.
pub(super) trait MaybeGpu: Backend {
    /// `preprocess` of frames given as `ImageBitmap`s.
    fn preprocess_images(&self, images: &[ImageBitmap], resolution: usize, resize: Resize) -> Result<Tensor<Self>>;
}

impl MaybeGpu for Gpu {
    fn preprocess_images(&self, images: &[ImageBitmap], resolution: usize, resize: Resize) -> Result<Tensor<Self>> {
        self.preprocess_frames(&self.upload_images(images)?, resolution, resize)
    }
}

impl MaybeGpu for Cpu {
    fn preprocess_images(&self, _: &[ImageBitmap], _: usize, _: Resize) -> Result<Tensor<Self>> {
        bail!(Input, "frames given as images need the WebGPU backend; on the CPU send RGB bytes")
    }
}
