//! Between JavaScript and the engine: errors as named JS `Error`s, and frames given as bytes or
//! `ImageBitmap`s.

use js_sys::{Array, Function, Uint8Array};
use wasm_bindgen::prelude::*;
use web_sys::ImageBitmap;

use super::requests::Decoded;
use crate::video::{self, Video};
use crate::{bail, Error, Result};

pub(super) fn js_error(e: Error) -> JsValue {
    let name = match &e {
        Error::Weights(_) => "WeightsError",
        Error::Input(_) => "InputError",
        Error::Gpu(_) => "GpuError",
        Error::DeviceLost(_) => "DeviceLostError",
        Error::Io(_) => "IoError",
    };
    let err = js_sys::Error::new(&e.to_string());
    err.set_name(name);
    err.into()
}

pub(super) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Frames from the page: RGB bytes (T×H×W×3), or `ImageBitmap`s that reach the GPU without
/// passing through wasm memory (WebGPU only; see `src/gpu/frames.rs`).
pub(super) enum Frames {
    Rgb(Video),
    Images(Vec<ImageBitmap>),
}

impl Frames {
    pub(super) fn from_js(data: JsValue, frames: usize, height: usize, width: usize) -> Result<Frames> {
        if let Some(bytes) = data.dyn_ref::<Uint8Array>() {
            // the page sends at most a few hundred MB; refuse sizes that could not be a real clip
            if frames.checked_mul(height).and_then(|n| n.checked_mul(width)).and_then(|n| n.checked_mul(3)).is_none() {
                bail!(Input, "clip size {frames}×{height}×{width} overflows");
            }
            return Ok(Frames::Rgb(Video::new(frames, height, width, bytes.to_vec())?));
        }
        if Array::is_array(&data) {
            let images = Array::from(&data)
                .iter()
                .map(|v| v.dyn_into::<ImageBitmap>().map_err(|_| Error::Input("frames given as an array must all be ImageBitmaps".into())))
                .collect::<Result<Vec<_>>>()?;
            if images.len() != frames {
                bail!(Input, "{} images given for a {frames}-frame clip", images.len());
            }
            if let Some((i, image)) = images.iter().enumerate().find(|(_, b)| (b.height() as usize, b.width() as usize) != (height, width)) {
                bail!(Input, "frame {i} is {}×{} (closed, or not the clip's {width}×{height})", image.width(), image.height());
            }
            return Ok(Frames::Images(images));
        }
        bail!(Input, "frames must be a Uint8Array of RGB bytes or an array of ImageBitmaps")
    }

    pub(super) fn count(&self) -> usize {
        match self {
            Frames::Rgb(v) => v.frames,
            Frames::Images(images) => images.len(),
        }
    }
}

/// `onProgress({ done, total })` every `every` steps and at the end.
pub(super) fn progress_every(every: usize, on_progress: Option<Function>) -> impl FnMut(usize, usize) {
    move |done, total| {
        if let Some(f) = on_progress.as_ref().filter(|_| done.is_multiple_of(every) || done == total) {
            let progress = js_sys::Object::new();
            for (k, v) in [("done", done), ("total", total)] {
                js_sys::Reflect::set(&progress, &k.into(), &JsValue::from(v as u32)).expect("a plain object");
            }
            let _ = f.call1(&JsValue::NULL, &progress);
        }
    }
}

pub(super) fn decoded(v: &video::Video) -> Decoded {
    Decoded { video: Uint8Array::from(&v.rgb[..]), size: [v.frames, v.height, v.width] }
}
