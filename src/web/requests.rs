//! Every engine operation's request and result, as serde structs: one object in, one object out,
//! the same names in Rust, in `www/worker.js` (which dispatches `engine[op](request, onProgress)`
//! without knowing the operations) and in the JS API (`www/videogpt.js`). Large arrays cross as
//! typed arrays (`preserve`: no per-element conversion); errors cross as `Error`s whose `name` is
//! the kind (`convert::js_error`).

use js_sys::{Uint32Array, Uint8Array};
use serde::{Deserialize, Serialize};
use wasm_bindgen::JsValue;

use crate::engine::InputOptions;
use crate::workflow::Tokenizer;
use crate::{backend::Backend, Error, Result};

use super::convert::Frames;

/// Read a request object.
pub(super) fn request<T: for<'de> Deserialize<'de>>(op: &str, value: JsValue) -> Result<T> {
    let value = if value.is_undefined() || value.is_null() { js_sys::Object::new().into() } else { value };
    serde_wasm_bindgen::from_value(value).map_err(|e| Error::Input(format!("bad {op} request: {e}")))
}

/// Write a result object (maps as plain objects).
pub(super) fn result<T: Serialize>(value: &T) -> Result<JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true))
        .map_err(|e| Error::Input(format!("the engine could not write its answer: {e}")))
}

/// A clip as the page sends it: RGB bytes (T×H×W×3) or, on WebGPU, `ImageBitmap`s.
#[derive(Deserialize)]
pub struct Clip {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    data: JsValue,
    frames: usize,
    height: usize,
    width: usize,
}

impl Clip {
    pub(super) fn frames(self) -> Result<Frames> {
        Frames::from_js(self.data, self.frames, self.height, self.width)
    }
}

/// `create`: open a backend.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateRequest {
    /// `"webgpu"`, `"cpu"` or `"auto"`.
    pub device: String,
    /// Enables `crashForTest` (the browser tests only).
    #[serde(default)]
    pub test_hooks: bool,
}

/// `loadVqvae`: a VQ-VAE file (safetensors or an original checkpoint) becomes the tokenizer.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadVqvaeRequest {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub bytes: Uint8Array,
    /// The name `.vgt` files record (the page's model id; a file name loses its extension).
    pub id: Option<String>,
    #[serde(default)]
    pub input: InputOptions,
}

/// `setInput`: another resolution or resize for the loaded tokenizer; no weights move.
#[derive(Deserialize)]
pub struct SetInputRequest {
    #[serde(default)]
    pub input: InputOptions,
}

/// `loadPrior`: a GPT file, with its VQ-VAE under `vqvae.` or given apart.
#[derive(Deserialize)]
pub struct LoadPriorRequest {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub bytes: Uint8Array,
    pub id: Option<String>,
    #[serde(default, with = "serde_wasm_bindgen::preserve")]
    pub vqvae: JsValue,
}

/// `encode`, `reconstruct`, `encodeVgt`: a clip, and for `.vgt` files its frame rate.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClipRequest {
    pub clip: Clip,
    /// Tokenize with the prior's own VQ-VAE (`encode` only).
    #[serde(default)]
    pub for_prior: bool,
    pub fps: Option<f32>,
}

/// `decode`: a T'×H'×W' token grid.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecodeRequest {
    pub tokens: Vec<u32>,
    pub latent: [usize; 3],
    #[serde(default)]
    pub for_prior: bool,
}

/// `decodeVgt`, `codeVgt`, `vgtHeader`: a `.vgt` file.
#[derive(Deserialize)]
pub struct BytesRequest {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub bytes: Uint8Array,
}

/// `sample` (from nothing, or after `prefix` tokens) and `continueClip` (after the first
/// `prefixFrames` latent frames of `clip`, tokenized by the prior's VQ-VAE).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub struct SampleRequest {
    pub seed: Option<f64>,
    pub temperature: Option<f32>,
    pub top_k: Option<usize>,
    pub class: Option<usize>,
    pub prefix: Option<Vec<u32>>,
    pub clip: Option<Clip>,
    pub prefix_frames: Option<usize>,
    /// Tokens between progress reports (0: about 1/64 of the grid).
    pub report_every: Option<usize>,
}

/// `gpuStats`.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct StatsRequest {
    pub reset: bool,
}

/// What the page knows of a loaded VQ-VAE, at its current input.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VqvaeInfo {
    kind: &'static str,
    id: String,
    hash: String,
    embedding_dim: usize,
    n_codes: usize,
    n_hiddens: usize,
    n_res_layers: usize,
    downsample: [usize; 3],
    /// The file's resolution and the latent grid of a clip at it.
    resolution: usize,
    latent: [usize; 3],
    sequence_length: usize,
    token_bits: u32,
    parameters: usize,
    /// What clips are brought to now, and the latent grid of a model window there.
    input_resolution: usize,
    input_latent: [usize; 3],
    resize: String,
}

impl VqvaeInfo {
    pub(super) fn of<B: Backend>(t: &Tokenizer<B>) -> Self {
        let c = t.config();
        VqvaeInfo {
            kind: "vqvae",
            id: t.id.clone(),
            hash: crate::vgt::hex(&t.hash),
            embedding_dim: c.embedding_dim,
            n_codes: c.n_codes,
            n_hiddens: c.n_hiddens,
            n_res_layers: c.n_res_layers,
            downsample: c.downsample,
            resolution: c.resolution,
            latent: c.latent_shape(),
            sequence_length: c.sequence_length,
            token_bits: (c.n_codes as f64).log2().ceil() as u32,
            parameters: c.parameter_count(),
            input_resolution: t.resolution,
            input_latent: t.input_latent(),
            resize: format!("{:?}", t.resize).to_lowercase(),
        }
    }
}

/// What the page knows of a loaded GPT prior.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PriorInfo {
    pub kind: &'static str,
    pub hidden_dim: usize,
    pub heads: usize,
    pub layers: usize,
    pub attn_type: String,
    pub classes: usize,
    pub latent: [usize; 3],
    pub vqvae: VqvaeInfo,
}

/// `encode`: the first model window's tokens and the model-sized frames they describe.
#[derive(Serialize)]
pub struct Encoded {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub tokens: Uint32Array,
    pub latent: [usize; 3],
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub input: Uint8Array,
    pub size: [usize; 3],
}

/// `decode`, `readFrames`: frames (T×H×W×3 RGB) and their T×H×W.
#[derive(Serialize)]
pub struct Decoded {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub video: Uint8Array,
    pub size: [usize; 3],
}

/// `encodeVgt`: the file's bytes.
#[derive(Serialize)]
pub struct VgtBytes {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub bytes: Uint8Array,
}

/// `vgtHeader`: what a `.vgt` file's header says (hashes as hex).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VgtHeader {
    pub version: u8,
    pub model_id: String,
    pub model_hash: String,
    /// The prior a version 2 file is coded under; `null` for a bit-packed file.
    pub prior_hash: Option<String>,
    /// `[B, T', H', W']`.
    pub shape: [usize; 4],
    pub fps: Option<f32>,
    /// What the tokens cost, in bits each (⌈log2 n_codes⌉ bit-packed, about the prior's
    /// cross-entropy coded).
    pub bits_per_token: f64,
}

impl VgtHeader {
    pub fn of(h: &crate::vgt::Header) -> Self {
        VgtHeader {
            version: h.version,
            model_id: h.model_id.clone(),
            model_hash: crate::vgt::hex(&h.model_hash),
            prior_hash: h.prior_hash.map(|p| crate::vgt::hex(&p)),
            shape: h.shape,
            fps: h.fps,
            bits_per_token: (h.payload_bytes * 8) as f64 / h.shape.iter().product::<usize>() as f64,
        }
    }
}

/// `decodeVgt`: the clips one after another, and what the file said.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecodedVgt {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub video: Uint8Array,
    pub size: [usize; 3],
    pub fps: Option<f32>,
    pub model_id: String,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub tokens: Uint32Array,
    pub latent: [usize; 3],
}

/// `reconstruct`: both clips, per-frame metrics, the time it took and the tokens as a `.vgt`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconstructed {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub tokens: Uint32Array,
    pub latent: [usize; 3],
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub input: Uint8Array,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub output: Uint8Array,
    pub size: [usize; 3],
    pub psnr: Vec<f64>,
    pub ssim: Vec<f64>,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub vgt: Uint8Array,
    pub total_ms: f64,
    /// Each half apart, where the backend computes as it is asked (the CPU).
    pub encode_ms: Option<f64>,
    pub decode_ms: Option<f64>,
}

/// `sample`, `continueClip`: the grid and its decoded clip; a continuation also gives how many
/// latent frames were kept and the model-sized frames the prior's VQ-VAE saw.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sampled {
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub tokens: Uint32Array,
    pub latent: [usize; 3],
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub video: Uint8Array,
    pub size: [usize; 3],
    pub prefix_frames: Option<usize>,
    #[serde(with = "serde_wasm_bindgen::preserve")]
    pub input: JsValue,
    pub input_size: Option<[usize; 3]>,
}
