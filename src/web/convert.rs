//! Between JavaScript and the engine: errors as named JS `Error`s, plain objects, frames given as
//! bytes or `ImageBitmap`s, and the options objects `loadVqvae` and `sample` take.

use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use web_sys::ImageBitmap;

use crate::backend::Backend;
use crate::session::Tokenizer;
use crate::video::{Resize, Video};
use crate::{bail, Error, Result, VqVaeConfig};

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

/// A plain JS object from key/value pairs.
pub(super) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        Reflect::set(&o, &JsValue::from_str(k), v).expect("setting a field of a fresh object");
    }
    o.into()
}

pub(super) fn shape(dims: &[usize]) -> JsValue {
    dims.iter().map(|&d| JsValue::from(d as u32)).collect::<js_sys::Array>().into()
}

pub(super) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// What the page knows about a loaded model.
pub(super) fn vqvae_info(c: &VqVaeConfig) -> JsValue {
    let latent = c.latent_shape();
    object(&[
        ("kind", "vqvae".into()),
        ("embeddingDim", (c.embedding_dim as u32).into()),
        ("nCodes", (c.n_codes as u32).into()),
        ("nHiddens", (c.n_hiddens as u32).into()),
        ("nResLayers", (c.n_res_layers as u32).into()),
        ("downsample", shape(&c.downsample)),
        ("resolution", (c.resolution as u32).into()),
        ("sequenceLength", (c.sequence_length as u32).into()),
        ("latent", shape(&latent)),
        ("tokenBits", (c.n_codes as f64).log2().ceil().into()),
        ("parameters", (c.parameter_count() as f64).into()),
    ])
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

/// How `loadVqvae` brings clips to the model: `{ resolution, resize }`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct InputOptions {
    pub(super) resolution: Option<usize>,
    pub(super) resize: Option<String>,
}

impl InputOptions {
    pub(super) fn from_js(options: JsValue) -> Result<Self> {
        if options.is_undefined() || options.is_null() {
            return Ok(Self::default());
        }
        serde_wasm_bindgen::from_value(options).map_err(|e| Error::Input(format!("bad model options: {e}")))
    }

    pub(super) fn apply<B: Backend>(&self, t: Tokenizer<B>) -> Result<Tokenizer<B>> {
        let resize = self.resize.as_deref().map_or(Ok(Resize::default()), str::parse)?;
        Ok(t.with_resolution(self.resolution)?.with_resize(resize))
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct SampleArgs {
    pub(super) seed: Option<f64>,
    pub(super) temperature: Option<f32>,
    pub(super) top_k: Option<usize>,
    pub(super) class: Option<usize>,
    /// Tokens of the first latent frames to keep (prefix continuation).
    pub(super) prefix: Option<Vec<u32>>,
    /// Tokens between progress reports (0: the engine picks about 1/64 of the grid).
    pub(super) report_every: Option<usize>,
}
