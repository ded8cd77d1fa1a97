//! The engine as the web page sees it: wasm-bindgen bindings that `www/worker.js` drives. One
//! [`Engine`] owns one device (a WebGPU adapter, or the CPU path where there is none), the VQ-VAE
//! used for reconstruction and optionally a GPT prior with its own VQ-VAE. Every method that
//! computes returns a Promise; errors are JS `Error`s whose `name` says the kind
//! (`WeightsError`, `InputError`, `GpuError`, `DeviceLostError`, `IoError`).

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Array, Float64Array, Function, Object, Promise, Reflect, Uint32Array, Uint8Array};
use serde::Deserialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;
use web_sys::ImageBitmap;

use crate::backend::{Backend, Tensor};
use crate::gpt::{Gpt, SampleOptions};
use crate::gpu::GpuPrior;
use crate::video::{self, Video};
use crate::{bail, metrics, Cpu, Error, Gpu, Result, VqVae};

#[wasm_bindgen(start)]
pub fn start() {
    // a Rust panic shows its message in the console instead of a bare "unreachable"
    console_error_panic_hook::set_once();
}

fn js_error(e: Error) -> JsValue {
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
fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        Reflect::set(&o, &JsValue::from_str(k), v).expect("setting a field of a fresh object");
    }
    o.into()
}

fn shape(dims: &[usize]) -> JsValue {
    dims.iter().map(|&d| JsValue::from(d as u32)).collect::<js_sys::Array>().into()
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A prior and the VQ-VAE whose codes it models (decodes its samples, encodes prefixes).
struct Prior<B: Backend> {
    gpt: Gpt,
    vqvae: VqVae<B>,
}

/// The models loaded on one backend. Models sit behind `Rc` so a running job keeps its model
/// alive while the page loads another.
struct Models<B: Backend> {
    backend: B,
    vqvae: RefCell<Option<Rc<VqVae<B>>>>,
    /// `vgt::model_hash` of the VQ-VAE file: `.vgt` files name their model by it.
    vqvae_hash: std::cell::Cell<[u8; 16]>,
    prior: RefCell<Option<Rc<Prior<B>>>>,
}

impl<B: Backend + 'static> Models<B> {
    fn new(backend: B) -> Rc<Self> {
        Rc::new(Models { backend, vqvae: RefCell::new(None), vqvae_hash: Default::default(), prior: RefCell::new(None) })
    }

    fn vqvae(&self) -> Result<Rc<VqVae<B>>> {
        self.vqvae.borrow().clone().ok_or_else(|| Error::Input("no VQ-VAE loaded: call loadVqvae first".into()))
    }

    fn prior(&self) -> Result<Rc<Prior<B>>> {
        self.prior.borrow().clone().ok_or_else(|| Error::Input("no GPT prior loaded: call loadPrior first".into()))
    }

    /// The reconstruction VQ-VAE, or the prior's when `for_prior`.
    fn tokenizer(&self, for_prior: bool) -> Result<Rc<dyn AsVqVae<B>>> {
        Ok(if for_prior { self.prior()? as Rc<dyn AsVqVae<B>> } else { self.vqvae()? as Rc<dyn AsVqVae<B>> })
    }
}

/// Either a VQ-VAE or a prior's VQ-VAE, behind one `Rc`.
trait AsVqVae<B: Backend> {
    fn vqvae(&self) -> &VqVae<B>;
}
impl<B: Backend> AsVqVae<B> for VqVae<B> {
    fn vqvae(&self) -> &VqVae<B> {
        self
    }
}
impl<B: Backend> AsVqVae<B> for Prior<B> {
    fn vqvae(&self) -> &VqVae<B> {
        &self.vqvae
    }
}

enum Device {
    Gpu(Rc<Models<Gpu>>),
    Cpu(Rc<Models<Cpu>>),
}

/// Run `$body` (an async block over `$m: Rc<Models<B>>`) on whichever backend the engine has,
/// as a Promise. Generic code cannot be stored as a value, so the body is instantiated twice.
macro_rules! on_device {
    ($engine:expr, |$m:ident| $body:expr) => {
        match &$engine.device {
            Device::Gpu(models) => {
                let $m = models.clone();
                future_to_promise(async move { $body.await.map_err(js_error) })
            }
            Device::Cpu(models) => {
                let $m = models.clone();
                future_to_promise(async move { $body.await.map_err(js_error) })
            }
        }
    };
}

/// What the page knows about a loaded model.
fn vqvae_info<B: Backend>(m: &VqVae<B>) -> JsValue {
    let c = &m.config;
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
enum Frames {
    Rgb(Video),
    Images(Vec<ImageBitmap>),
}

impl Frames {
    fn from_js(data: JsValue, frames: usize, height: usize, width: usize) -> Result<Frames> {
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

    fn count(&self) -> usize {
        match self {
            Frames::Rgb(v) => v.frames,
            Frames::Images(images) => images.len(),
        }
    }
}

/// The first model window of a clip, preprocessed on the device as VideoGPT does (shorter side
/// resized to the model's resolution, centre crop); clips longer than `sequence_length` are cut
/// to it. Returns the tensor and its dims checked against the model's strides.
fn model_input<B: Backend + MaybeGpu>(b: &B, m: &VqVae<B>, frames: &Frames) -> Result<(Tensor<B>, [usize; 3])> {
    let c = &m.config;
    let n = frames.count();
    let (windows, _) = video::windows(n, c.sequence_length, c.downsample[0]);
    let Some(first) = windows.first() else {
        bail!(Input, "the clip has {n} frames; the model needs at least {}", c.downsample[0]);
    };
    let x = match frames {
        Frames::Rgb(clip) if first.len() == clip.frames => b.preprocess(clip, c.resolution)?,
        Frames::Rgb(clip) => b.preprocess(&clip.slice(first.start, first.len()), c.resolution)?,
        Frames::Images(images) => b.preprocess_images(&images[first.clone()], c.resolution)?,
    };
    let latent = c.check_clip(x.dims.t, x.dims.h, x.dims.w)?;
    Ok((x, latent))
}

fn check_latent<B: Backend>(m: &VqVae<B>, tokens: &[u32], latent: [usize; 3]) -> Result<()> {
    if tokens.len() != latent.iter().product::<usize>() || latent.contains(&0) {
        bail!(Input, "{} tokens do not fill a {}×{}×{} grid", tokens.len(), latent[0], latent[1], latent[2]);
    }
    if let Some(&bad) = tokens.iter().find(|&&c| c as usize >= m.config.n_codes) {
        bail!(Input, "token {bad} is out of range for a codebook of {} codes", m.config.n_codes);
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct SampleArgs {
    seed: Option<f64>,
    temperature: Option<f32>,
    top_k: Option<usize>,
    class: Option<usize>,
    /// Tokens of the first latent frames to keep (prefix continuation).
    prefix: Option<Vec<u32>>,
    /// Tokens between progress reports (0: the engine picks about 1/64 of the grid).
    report_every: Option<usize>,
}

#[wasm_bindgen]
pub struct Engine {
    device: Device,
    adapter: String,
}

#[wasm_bindgen]
impl Engine {
    /// Open a backend: `"webgpu"` (fails without an adapter), `"cpu"`, or `"auto"` (WebGPU when
    /// an adapter opens, else the CPU; `fallbackReason` then says why).
    pub async fn create(device: String) -> std::result::Result<Engine, JsValue> {
        let cpu = |why: String| Engine { device: Device::Cpu(Models::new(Cpu)), adapter: why };
        match device.as_str() {
            "cpu" => Ok(cpu(String::new())),
            "webgpu" | "gpu" => {
                let gpu = Gpu::new().await.map_err(js_error)?;
                Ok(Engine { adapter: gpu.describe(), device: Device::Gpu(Models::new(gpu)) })
            }
            "auto" => Ok(match Gpu::new().await {
                Ok(gpu) => Engine { adapter: gpu.describe(), device: Device::Gpu(Models::new(gpu)) },
                Err(e) => cpu(e.to_string()),
            }),
            other => Err(js_error(Error::Input(format!("device must be webgpu, cpu or auto, not {other:?}")))),
        }
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.device {
            Device::Gpu(_) => "webgpu".into(),
            Device::Cpu(_) => "cpu".into(),
        }
    }

    /// The GPU adapter's name; on the CPU backend chosen by `"auto"`, why no GPU was used.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Load the reconstruction VQ-VAE from safetensors bytes; returns its hparams.
    #[wasm_bindgen(js_name = loadVqvae)]
    pub fn load_vqvae(&self, bytes: &[u8]) -> std::result::Result<JsValue, JsValue> {
        fn load<B: Backend>(m: &Models<B>, bytes: &[u8]) -> Result<JsValue> {
            let model = VqVae::load(&m.backend, bytes, "")?;
            let info = vqvae_info(&model);
            let hash = crate::vgt::model_hash(bytes);
            Reflect::set(&info, &"hash".into(), &crate::vgt::hex(&hash).into()).expect("a plain object");
            *m.vqvae.borrow_mut() = Some(Rc::new(model));
            m.vqvae_hash.set(hash);
            Ok(info)
        }
        match &self.device {
            Device::Gpu(m) => load(m, bytes),
            Device::Cpu(m) => load(m, bytes),
        }
        .map_err(js_error)
    }

    /// Load a GPT prior (its VQ-VAE under `vqvae.` in the same file, or given separately).
    #[wasm_bindgen(js_name = loadPrior)]
    pub fn load_prior(&self, bytes: &[u8], vqvae: Option<Vec<u8>>) -> std::result::Result<JsValue, JsValue> {
        fn load<B: Backend>(m: &Models<B>, bytes: &[u8], vq: Option<&[u8]>) -> Result<JsValue> {
            let gpt = Gpt::load(bytes, vq)?;
            let vqvae = match vq {
                Some(v) => VqVae::load(&m.backend, v, "")?,
                None => VqVae::load(&m.backend, bytes, "vqvae.")?,
            };
            let c = &gpt.config;
            let info = object(&[
                ("kind", "gpt".into()),
                ("hiddenDim", (c.hidden_dim as u32).into()),
                ("heads", (c.heads as u32).into()),
                ("layers", (c.layers as u32).into()),
                ("attnType", format!("{:?}", c.attn_type).to_lowercase().into()),
                ("classes", (c.class_cond_dim as u32).into()),
                ("latent", shape(&c.latent)),
                ("vqvae", vqvae_info(&vqvae)),
            ]);
            *m.prior.borrow_mut() = Some(Rc::new(Prior { gpt, vqvae }));
            Ok(info)
        }
        match &self.device {
            Device::Gpu(m) => load(m, bytes, vqvae.as_deref()),
            Device::Cpu(m) => load(m, bytes, vqvae.as_deref()),
        }
        .map_err(js_error)
    }

    /// Frames (T×H×W×3 uint8 RGB, or on WebGPU an array of T `ImageBitmap`s) → `{tokens, latent,
    /// input}`: the first model window's codes and the model-sized frames they came from. `forPrior` uses the prior's VQ-VAE.
    pub fn encode(&self, data: JsValue, frames: usize, height: usize, width: usize, for_prior: bool) -> Promise {
        on_device!(self, |m| async move {
            let model = m.tokenizer(for_prior)?;
            let (b, vq) = (&m.backend, model.vqvae());
            let (x, latent) = model_input(b, vq, &Frames::from_js(data, frames, height, width)?)?;
            let codes = b.read_codes(&vq.encode(b, &x)?).await?;
            let input = video::to_video(&b.read_volume(&x).await?)?;
            Ok::<_, Error>(object(&[
                ("tokens", Uint32Array::from(&codes[..]).into()),
                ("latent", shape(&latent)),
                ("input", Uint8Array::from(&input.rgb[..]).into()),
                ("size", shape(&[input.frames, input.height, input.width])),
            ]))
        })
    }

    /// Tokens of a T'×H'×W' grid → `{video, size}` (uint8 RGB frames and their T×H×W).
    pub fn decode(&self, tokens: Vec<u32>, t: usize, h: usize, w: usize, for_prior: bool) -> Promise {
        on_device!(self, |m| async move {
            let model = m.tokenizer(for_prior)?;
            let vq = model.vqvae();
            check_latent(vq, &tokens, [t, h, w])?;
            let out = video::to_video(&vq.decode_codes(&m.backend, &tokens, [t, h, w]).await?)?;
            Ok::<_, Error>(object(&[
                ("video", Uint8Array::from(&out.rgb[..]).into()),
                ("size", shape(&[out.frames, out.height, out.width])),
            ]))
        })
    }

    /// Encode RGB frames into a `.vgt` token file (docs/vgt-format.md) naming the loaded model as
    /// `model_id`; `fps` (0: none) is stored with it.
    #[wasm_bindgen(js_name = encodeVgt)]
    pub fn encode_vgt(&self, data: JsValue, frames: usize, height: usize, width: usize, model_id: String, fps: f32) -> Promise {
        on_device!(self, |m| async move {
            let (b, vq) = (&m.backend, m.vqvae()?);
            let (x, latent) = model_input(b, &vq, &Frames::from_js(data, frames, height, width)?)?;
            let codes = b.read_codes(&vq.encode(b, &x)?).await?;
            let file = crate::vgt::TokenFile {
                model_id,
                model_hash: m.vqvae_hash.get(),
                n_codes: vq.config.n_codes,
                tokens: crate::tokens::Tokens { shape: [1, latent[0], latent[1], latent[2]], codes },
                fps: (fps > 0.0).then_some(fps),
            };
            Ok::<_, Error>(JsValue::from(Uint8Array::from(&crate::vgt::write(&file)?[..])))
        })
    }

    /// Decode a `.vgt` token file with the loaded VQ-VAE (refused when the file names another
    /// model): `{video, size, fps, modelId, tokens, latent}`, the clips one after another.
    #[wasm_bindgen(js_name = decodeVgt)]
    pub fn decode_vgt(&self, bytes: Vec<u8>) -> Promise {
        on_device!(self, |m| async move {
            let file = crate::vgt::read(&bytes)?;
            let vq = m.vqvae()?;
            if file.n_codes != vq.config.n_codes || file.model_hash != m.vqvae_hash.get() {
                bail!(Input, "these tokens were made with model {} ({}), not the loaded one ({})",
                    file.model_id, crate::vgt::hex(&file.model_hash), crate::vgt::hex(&m.vqvae_hash.get()));
            }
            let latent = file.tokens.latent();
            let mut rgb = Vec::new();
            let mut size = [0, 0, 0];
            for codes in file.tokens.clips() {
                let v = video::to_video(&vq.decode_codes(&m.backend, codes, latent).await?)?;
                size = [size[0] + v.frames, v.height, v.width];
                rgb.extend_from_slice(&v.rgb);
            }
            Ok::<_, Error>(object(&[
                ("video", Uint8Array::from(&rgb[..]).into()),
                ("size", shape(&size)),
                ("fps", file.fps.map_or(JsValue::UNDEFINED, |f| f.into())),
                ("modelId", file.model_id.into()),
                ("tokens", Uint32Array::from(&file.tokens.codes[..]).into()),
                ("latent", shape(&latent)),
            ]))
        })
    }

    /// Encode then decode; also PSNR and SSIM per frame against the model-sized input, the time
    /// each half took, and the tokens as a `.vgt` file naming the model `model_id`.
    pub fn reconstruct(&self, data: JsValue, frames: usize, height: usize, width: usize, model_id: String, fps: f32) -> Promise {
        on_device!(self, |m| async move {
            let (b, vq) = (&m.backend, m.vqvae()?);
            let t0 = now_ms();
            let (x, latent) = model_input(b, &vq, &Frames::from_js(data, frames, height, width)?)?;
            let codes = vq.encode(b, &x)?;
            let tokens = b.read_codes(&codes).await?;
            let t1 = now_ms();
            let y = b.read_volume(&vq.decode(b, &codes)?).await?;
            let t2 = now_ms();
            let (input, output) = (video::to_video(&b.read_volume(&x).await?)?, video::to_video(&y)?);
            let vgt = crate::vgt::write(&crate::vgt::TokenFile {
                model_id,
                model_hash: m.vqvae_hash.get(),
                n_codes: vq.config.n_codes,
                tokens: crate::tokens::Tokens { shape: [1, latent[0], latent[1], latent[2]], codes: tokens.clone() },
                fps: (fps > 0.0).then_some(fps),
            })?;
            let codes = tokens;
            Ok::<_, Error>(object(&[
                ("tokens", Uint32Array::from(&codes[..]).into()),
                ("latent", shape(&latent)),
                ("input", Uint8Array::from(&input.rgb[..]).into()),
                ("output", Uint8Array::from(&output.rgb[..]).into()),
                ("size", shape(&[input.frames, input.height, input.width])),
                ("psnr", Float64Array::from(&metrics::psnr_per_frame(&input, &output)?[..]).into()),
                ("ssim", Float64Array::from(&metrics::ssim_per_frame(&input, &output)?[..]).into()),
                ("vgt", Uint8Array::from(&vgt[..]).into()),
                ("encodeMs", (t1 - t0).into()),
                ("decodeMs", (t2 - t1).into()),
            ]))
        })
    }

    /// The RGB bytes (T×H×W×3) of frames given as bytes or as images: what the engine sees of
    /// them, for pages that export or measure the frames they sent.
    #[wasm_bindgen(js_name = readFrames)]
    pub fn read_frames(&self, data: JsValue, frames: usize, height: usize, width: usize) -> Promise {
        on_device!(self, |m| async move {
            let rgb = match Frames::from_js(data, frames, height, width)? {
                Frames::Rgb(clip) => clip.rgb,
                Frames::Images(images) => {
                    let gpu = m.backend.as_gpu().ok_or_else(|| Error::Input("frames given as images need the WebGPU backend".into()))?;
                    gpu.read_frames(&gpu.upload_images(&images)?).await?.rgb
                }
            };
            Ok::<_, Error>(JsValue::from(Uint8Array::from(&rgb[..])))
        })
    }

    /// Destroy the GPU device, as a driver reset would (for testing recovery from device loss).
    #[wasm_bindgen(js_name = loseDevice)]
    pub fn lose_device(&self) {
        if let Device::Gpu(m) = &self.device {
            m.backend.destroy();
        }
    }

    /// Sample a token grid from the prior and decode it: `options` = `{seed, temperature, topK,
    /// class, prefix, reportEvery}`; `onProgress(done, total, gridSoFar)` is called as it grows.
    /// Resolves to `{tokens, latent, video, size}`.
    pub fn sample(&self, options: JsValue, on_progress: Function) -> Promise {
        let args: SampleArgs = match serde_wasm_bindgen::from_value(options) {
            Ok(a) => a,
            Err(e) => return Promise::reject(&js_error(Error::Input(format!("bad sample options: {e}")))),
        };
        let is_gpu = matches!(self.device, Device::Gpu(_));
        on_device!(self, |m| async move {
            let prior = m.prior()?;
            let c = &prior.gpt.config;
            let seed = args.seed.unwrap_or(0.0);
            if !(seed >= 0.0 && seed.fract() == 0.0 && seed <= 9.007_199_254_740_991e15) {
                bail!(Input, "seed must be a whole number from 0 to 2^53-1, got {seed}");
            }
            let opts = SampleOptions {
                temperature: args.temperature.unwrap_or(1.0),
                top_k: args.top_k,
                seed: seed as u64,
                class: args.class,
                frames: None,
            };
            let prefix = args.prefix.unwrap_or_default();
            let total = c.positions();
            let every = args.report_every.filter(|&e| e > 0).unwrap_or(total.div_ceil(64));
            let report = |done: usize, grid: &[u32]| {
                let _ = on_progress.call3(&JsValue::NULL, &(done as u32).into(), &(total as u32).into(), &Uint32Array::from(grid));
            };
            let grid = if is_gpu {
                sample_gpu(&m.backend, &prior, &opts, &prefix, every, report).await?
            } else {
                let mut since = 0;
                prior.gpt.sample(&opts, &prefix, |i, grid| {
                    since += 1;
                    if since >= every {
                        since = 0;
                        report(i + 1, grid);
                    }
                })?
            };
            let latent = c.latent;
            let out = video::to_video(&prior.vqvae.decode_codes(&m.backend, &grid, latent).await?)?;
            Ok::<_, Error>(object(&[
                ("tokens", Uint32Array::from(&grid[..]).into()),
                ("latent", shape(&latent)),
                ("video", Uint8Array::from(&out.rgb[..]).into()),
                ("size", shape(&[out.frames, out.height, out.width])),
            ]))
        })
    }
}

/// What only the GPU backend can do: the GPU sampler, and frames given as images.
trait MaybeGpu: Backend {
    fn as_gpu(&self) -> Option<&Gpu>;
    /// `preprocess` of frames given as `ImageBitmap`s.
    fn preprocess_images(&self, images: &[ImageBitmap], resolution: usize) -> Result<Tensor<Self>>;
}
impl MaybeGpu for Gpu {
    fn as_gpu(&self) -> Option<&Gpu> {
        Some(self)
    }
    fn preprocess_images(&self, images: &[ImageBitmap], resolution: usize) -> Result<Tensor<Self>> {
        self.preprocess_frames(&self.upload_images(images)?, resolution)
    }
}
impl MaybeGpu for Cpu {
    fn as_gpu(&self) -> Option<&Gpu> {
        None
    }
    fn preprocess_images(&self, _: &[ImageBitmap], _: usize) -> Result<Tensor<Self>> {
        bail!(Input, "frames given as images need the WebGPU backend; on the CPU send RGB bytes")
    }
}

async fn sample_gpu<B: Backend + MaybeGpu>(b: &B, prior: &Prior<B>, opts: &SampleOptions, prefix: &[u32], every: usize,
                                          report: impl FnMut(usize, &[u32])) -> Result<Vec<u32>> {
    let gpu = b.as_gpu().ok_or_else(|| Error::Gpu("the GPU sampler needs the WebGPU backend".into()))?;
    GpuPrior::new(gpu, &prior.gpt)?.sample(opts, prefix, every, report).await
}
