//! The engine as the web page sees it: wasm-bindgen bindings that `www/worker.js` drives. One
//! [`WebEngine`] (`Engine` in JS) holds the library's [`engine::Engine`](crate::engine::Engine):
//! one device (a WebGPU adapter, or the CPU path where there is none) and its models. Every
//! operation takes one request object and resolves to one result object (`requests.rs`); the
//! Worker calls `engine[op](request, onProgress)` for any name in [`operations`], so an operation
//! is written here once and nowhere else. Errors are JS `Error`s whose `name` says the kind
//! (`WeightsError`, `InputError`, `GpuError`, `DeviceLostError`, `IoError`).

use std::rc::Rc;

use js_sys::{Function, Promise, Uint32Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::backend::Backend;
use crate::engine::{Device, Engine, ModelFile, Models};
use crate::gpt::SampleOptions;
use crate::tokens::Tokens;
use crate::workflow::{seed_from_f64, Tokenizer};
use crate::{on_engine, video, Error, Result};

mod convert;
mod input;
mod requests;
use convert::{decoded, js_error, now_ms, progress_every, Frames};
use input::{model_input, window_input, MaybeGpu};
use requests::*;

#[wasm_bindgen(start)]
pub fn start() {
    // a Rust panic shows its message in the console instead of a bare "unreachable"
    console_error_panic_hook::set_once();
}

/// The operations an engine answers, by the names the Worker and the JS API use.
const OPERATIONS: &[&str] = &[
    "loadVqvae",
    "setInput",
    "loadPrior",
    "encode",
    "decode",
    "encodeVgt",
    "codeVgt",
    "vgtHeader",
    "decodeVgt",
    "reconstruct",
    "readFrames",
    "sample",
    "continueClip",
    "gpuStats",
    "loseDevice",
    "crashForTest",
];

/// The names of the engine's operations (the Worker dispatches these and refuses others).
#[wasm_bindgen]
pub fn operations() -> js_sys::Array {
    OPERATIONS.iter().map(|&op| JsValue::from_str(op)).collect()
}

/// Run an operation's future as a Promise of its result object.
fn answer<T: serde::Serialize>(f: impl std::future::Future<Output = Result<T>> + 'static) -> Promise {
    future_to_promise(async move { f.await.and_then(|r| result(&r)).map_err(js_error) })
}

/// An operation that cannot start (a bad request) as a rejected Promise.
fn refuse(e: Error) -> Promise {
    Promise::reject(&js_error(e))
}

/// Parse the request, or return the rejected Promise.
macro_rules! request {
    ($op:literal, $value:expr) => {
        match request($op, $value) {
            Ok(r) => r,
            Err(e) => return refuse(e),
        }
    };
}

#[wasm_bindgen(js_name = Engine)]
pub struct WebEngine {
    engine: Engine,
    adapter: String,
    /// Whether `crashForTest` may panic: only an engine the tests create with `testHooks`.
    test_hooks: bool,
}

#[wasm_bindgen(js_class = Engine)]
impl WebEngine {
    /// `{ device, testHooks }`: `"webgpu"` (fails without an adapter), `"cpu"`, or `"auto"`
    /// (WebGPU when an adapter opens, else the CPU; `adapter` then says why).
    pub async fn create(request: JsValue) -> std::result::Result<WebEngine, JsValue> {
        let r: CreateRequest = requests::request("create", request).map_err(js_error)?;
        let (engine, why) = match r.device.as_str() {
            "auto" => Engine::open_auto().await,
            other => (Engine::open(other.parse::<Device>().map_err(js_error)?).await.map_err(js_error)?, None),
        };
        let adapter = why.map_or_else(|| engine.adapter(), |e| e.to_string());
        Ok(WebEngine { engine, adapter, test_hooks: r.test_hooks })
    }

    /// `"webgpu"` or `"cpu"`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        match self.engine.device() {
            Device::Gpu => "webgpu".into(),
            Device::Cpu => "cpu".into(),
        }
    }

    /// The GPU adapter's name; on the CPU backend chosen by `"auto"`, why no GPU was used.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// `{ bytes, id, input: { resolution, resize } }` → the VQ-VAE's [`VqvaeInfo`]. Original
    /// VideoGPT checkpoints (`.ckpt`/`.pt`) are converted here without running their pickle.
    #[wasm_bindgen(js_name = loadVqvae)]
    pub fn load_vqvae(&self, request: JsValue) -> Promise {
        let r: LoadVqvaeRequest = request!("loadVqvae", request);
        on_engine!(&self.engine, |m| answer(async move {
            let bytes = crate::checkpoint::model_bytes(&r.bytes.to_vec())?.into_owned();
            let t = m.load_tokenizer(ModelFile::new(r.id.as_deref().unwrap_or("model"), &bytes), r.input)?;
            Ok(VqvaeInfo::of(&t))
        }))
    }

    /// `{ input: { resolution, resize } }` → the VQ-VAE's [`VqvaeInfo`] at its new input. The
    /// weights stay where they are: nothing is sent or loaded again.
    #[wasm_bindgen(js_name = setInput)]
    pub fn set_input(&self, request: JsValue) -> Promise {
        let r: SetInputRequest = request!("setInput", request);
        on_engine!(&self.engine, |m| answer(async move { Ok(VqvaeInfo::of(&*m.set_input(r.input)?)) }))
    }

    /// `{ bytes, id, vqvae? }` → the prior's [`PriorInfo`]: a GPT file with its VQ-VAE under
    /// `vqvae.`, or with the VQ-VAE's bytes apart.
    #[wasm_bindgen(js_name = loadPrior)]
    pub fn load_prior(&self, request: JsValue) -> Promise {
        let r: LoadPriorRequest = request!("loadPrior", request);
        on_engine!(&self.engine, |m| answer(async move {
            let gpt = crate::checkpoint::model_bytes(&r.bytes.to_vec())?.into_owned();
            let vqvae = match r.vqvae.dyn_ref::<Uint8Array>() {
                Some(v) => Some(crate::checkpoint::model_bytes(&v.to_vec())?.into_owned()),
                None => None,
            };
            let id = r.id.as_deref().unwrap_or("prior");
            let p = m.load_prior(ModelFile::new(id, &gpt), vqvae.as_deref().map(|v| ModelFile::new("vqvae", v)))?;
            let c = &p.gpt.config;
            Ok(PriorInfo {
                kind: "gpt",
                hidden_dim: c.hidden_dim,
                heads: c.heads,
                layers: c.layers,
                attn_type: format!("{:?}", c.attn_type).to_lowercase(),
                classes: c.class_cond_dim,
                latent: c.latent,
                vqvae: VqvaeInfo::of(&p.tokenizer),
            })
        }))
    }

    /// `{ clip, forPrior }` → [`Encoded`]: the first model window's tokens and the model-sized
    /// frames they came from (`forPrior`: with the prior's VQ-VAE).
    pub fn encode(&self, request: JsValue) -> Promise {
        let r: ClipRequest = request!("encode", request);
        on_engine!(&self.engine, |m| answer(async move {
            let t = m.tokenizer_for(r.for_prior)?;
            let (codes, latent, input) = encode_first_window(&m, &t, &r.clip.frames()?).await?;
            Ok(Encoded {
                tokens: Uint32Array::from(&codes[..]),
                latent,
                input: Uint8Array::from(&input.rgb[..]),
                size: [input.frames, input.height, input.width],
            })
        }))
    }

    /// `{ tokens, latent, forPrior }` → [`Decoded`] frames.
    pub fn decode(&self, request: JsValue) -> Promise {
        let r: DecodeRequest = request!("decode", request);
        on_engine!(&self.engine, |m| answer(async move {
            let [t, h, w] = r.latent;
            let out = m.tokenizer_for(r.for_prior)?.decode(&m.backend, &Tokens { shape: [1, t, h, w], codes: r.tokens }, |_, _| {}).await?;
            Ok(decoded(&out))
        }))
    }

    /// `{ clip, fps }` → [`VgtBytes`]: every model window of the clip as a `.vgt` token file
    /// (docs/vgt-format.md) naming the loaded model; trailing frames short of a window are left out.
    #[wasm_bindgen(js_name = encodeVgt)]
    pub fn encode_vgt(&self, request: JsValue) -> Promise {
        let r: ClipRequest = request!("encodeVgt", request);
        on_engine!(&self.engine, |m| answer(async move {
            let (b, t, frames) = (&m.backend, m.tokenizer()?, r.clip.frames()?);
            let tokens = t.encode_clip(b, frames.count(), |w| window_input(b, &t, &frames, w), |_, _| {}).await?;
            let file = t.token_file(tokens, r.fps.filter(|&f| f > 0.0));
            Ok(VgtBytes { bytes: Uint8Array::from(&crate::vgt::write(&file)?[..]) })
        }))
    }

    /// `{ bytes }` → [`VgtBytes`]: a `.vgt` file of the loaded tokenizer's tokens, coded under the
    /// loaded prior (version 2, docs/vgt-format.md): about the prior's bits per token.
    /// `onProgress({ done, total })` every 64 tokens.
    #[wasm_bindgen(js_name = codeVgt)]
    pub fn code_vgt(&self, request: JsValue, on_progress: Option<Function>) -> Promise {
        let r: BytesRequest = request!("codeVgt", request);
        on_engine!(&self.engine, |m| answer(async move {
            let file = crate::vgt::read(&r.bytes.to_vec())?;
            let prior = m.prior()?;
            let bytes = crate::vgt::write_coded(&file, &prior.coding(), progress_every(64, on_progress))?;
            Ok(VgtBytes { bytes: Uint8Array::from(&bytes[..]) })
        }))
    }

    /// `{ bytes }` → the file's [`VgtHeader`], read without decoding (which, for a file coded
    /// under a prior, needs that prior: `priorHash` says which).
    #[wasm_bindgen(js_name = vgtHeader)]
    pub fn vgt_header(&self, request: JsValue) -> Promise {
        let r: BytesRequest = request!("vgtHeader", request);
        answer(async move { Ok(VgtHeader::of(&crate::vgt::header(&r.bytes.to_vec())?)) })
    }

    /// `{ bytes }` → [`DecodedVgt`]: a `.vgt` file decoded with the loaded VQ-VAE (refused when
    /// the file names another model), the clips one after another. A file coded under a prior
    /// needs that prior loaded; `onProgress({ done, total })` as its tokens decode.
    #[wasm_bindgen(js_name = decodeVgt)]
    pub fn decode_vgt(&self, request: JsValue, on_progress: Option<Function>) -> Promise {
        let r: BytesRequest = request!("decodeVgt", request);
        on_engine!(&self.engine, |m| answer(async move {
            // a bit-packed file ignores the prior; a coded one needs the loaded prior to be its own
            let prior = m.loaded_prior();
            let file = crate::vgt::read_with(&r.bytes.to_vec(), prior.as_ref().map(|p| p.coding()).as_ref(), progress_every(64, on_progress))?;
            let t = m.tokenizer()?;
            t.check_token_file(&file)?;
            let v = t.decode(&m.backend, &file.tokens, |_, _| {}).await?;
            Ok(DecodedVgt {
                video: Uint8Array::from(&v.rgb[..]),
                size: [v.frames, v.height, v.width],
                fps: file.fps,
                model_id: file.model_id,
                tokens: Uint32Array::from(&file.tokens.codes[..]),
                latent: file.tokens.latent(),
            })
        }))
    }

    /// `{ clip, fps }` → [`Reconstructed`]: encode then decode the first model window, with
    /// PSNR and SSIM per frame against the model-sized input and the tokens as a `.vgt` file.
    pub fn reconstruct(&self, request: JsValue) -> Promise {
        let r: ClipRequest = request!("reconstruct", request);
        on_engine!(&self.engine, |m| answer(async move {
            let (b, t) = (&m.backend, m.tokenizer()?);
            let started = now_ms();
            let x = model_input(b, &t, &r.clip.frames()?)?;
            let preprocess_ms = now_ms() - started;
            let rec = t.reconstruct(b, &x, &now_ms).await?;
            let [lt, lh, lw] = rec.latent;
            let vgt = crate::vgt::write(&t.token_file(Tokens { shape: [1, lt, lh, lw], codes: rec.tokens.clone() }, r.fps.filter(|&f| f > 0.0)))?;
            Ok(Reconstructed {
                tokens: Uint32Array::from(&rec.tokens[..]),
                latent: rec.latent,
                input: Uint8Array::from(&rec.input.rgb[..]),
                output: Uint8Array::from(&rec.output.rgb[..]),
                size: [rec.input.frames, rec.input.height, rec.input.width],
                psnr: rec.psnr_per_frame()?,
                ssim: rec.ssim_per_frame()?,
                vgt: Uint8Array::from(&vgt[..]),
                total_ms: preprocess_ms + rec.total_ms,
                encode_ms: rec.split_ms.map(|(e, _)| preprocess_ms + e),
                decode_ms: rec.split_ms.map(|(_, d)| d),
            })
        }))
    }

    /// `{ clip }` → [`Decoded`]: the RGB bytes of frames given as bytes or as images (what the
    /// engine sees of them, for pages that export or measure the frames they sent).
    #[wasm_bindgen(js_name = readFrames)]
    pub fn read_frames(&self, request: JsValue) -> Promise {
        let r: ClipRequest = request!("readFrames", request);
        on_engine!(&self.engine, |m| answer(async move {
            let v = match r.clip.frames()? {
                Frames::Rgb(clip) => clip,
                Frames::Images(images) => {
                    let gpu = m.backend.as_gpu().ok_or_else(|| Error::Input("frames given as images need the WebGPU backend".into()))?;
                    gpu.read_frames(&gpu.upload_images(&images)?).await?
                }
            };
            Ok(decoded(&v))
        }))
    }

    /// `{ seed, temperature, topK, class, prefix, reportEvery }` → [`Sampled`]: a token grid
    /// drawn from the prior (after the `prefix` tokens, if any) and decoded;
    /// `onProgress({ done, total, grid })` as it grows.
    pub fn sample(&self, request: JsValue, on_progress: Option<Function>) -> Promise {
        let r: SampleRequest = request!("sample", request);
        on_engine!(&self.engine, |m| answer(async move {
            let prefix = r.prefix.clone().unwrap_or_default();
            sample(&m, &r, prefix, on_progress, None).await
        }))
    }

    /// `{ clip, prefixFrames, seed, temperature, topK, class, reportEvery }` → [`Sampled`]: the
    /// prior's own VQ-VAE tokenizes the clip's first window, its first `prefixFrames` latent
    /// frames are kept and the rest sampled, as `videogpt sample --prefix CLIP --prefix-frames N`.
    #[wasm_bindgen(js_name = continueClip)]
    pub fn continue_clip(&self, request: JsValue, on_progress: Option<Function>) -> Promise {
        let mut r: SampleRequest = request!("continueClip", request);
        on_engine!(&self.engine, |m| answer(async move {
            let prior = m.prior()?;
            let clip = r.clip.take().ok_or_else(|| Error::Input("continueClip needs a clip".into()))?;
            let (codes, _, input) = encode_first_window(&m, &prior.tokenizer, &clip.frames()?).await?;
            let prefix = prior.prefix(&codes, r.prefix_frames.unwrap_or(1))?;
            sample(&m, &r, prefix, on_progress, Some(input)).await
        }))
    }

    /// `{ reset }` → [`GpuStats`](crate::gpu::GpuStats): the GPU runtime's counters since the engine started or the last
    /// call with `reset`; `null` on the CPU path.
    #[wasm_bindgen(js_name = gpuStats)]
    pub fn gpu_stats(&self, request: JsValue) -> Promise {
        let r: StatsRequest = request!("gpuStats", request);
        let Some(g) = self.engine.gpu() else { return Promise::resolve(&JsValue::NULL) };
        let stats = g.stats();
        if r.reset {
            g.reset_stats();
        }
        answer(async move { Ok(stats) })
    }

    /// Destroy the GPU device, as a driver reset would (for testing recovery from device loss).
    #[wasm_bindgen(js_name = loseDevice)]
    pub fn lose_device(&self) -> Promise {
        if let Some(g) = self.engine.gpu() {
            g.destroy();
        }
        Promise::resolve(&JsValue::UNDEFINED)
    }

    /// Panic inside a future, as an engine bug would (for testing that the page recovers). A
    /// test hook: an engine created without `testHooks` refuses with an error.
    #[wasm_bindgen(js_name = crashForTest)]
    pub fn crash_for_test(&self) -> Promise {
        if !self.test_hooks {
            return refuse(Error::Input("crashForTest is a test hook: this engine was created without testHooks".into()));
        }
        future_to_promise(async { panic!("a deliberate panic (crashForTest)") })
    }
}

/// The first model window of `frames` through `t`: its codes, latent grid and model-sized frames.
async fn encode_first_window<B: Backend + MaybeGpu>(m: &Models<B>, t: &Tokenizer<B>, frames: &Frames) -> Result<(Vec<u32>, [usize; 3], video::Video)> {
    let b = &m.backend;
    let x = model_input(b, t, frames)?;
    let (codes, latent) = t.encode(b, &x).await?;
    Ok((codes, latent, video::input_to_video(&b.read_volume(&x).await?)?))
}

/// Sample the rest of a grid after `prefix` and decode it, reporting progress to `on_progress`.
async fn sample<B: Backend>(
    m: &Rc<Models<B>>,
    r: &SampleRequest,
    prefix: Vec<u32>,
    on_progress: Option<Function>,
    input: Option<video::Video>,
) -> Result<Sampled> {
    let prior = m.prior()?;
    let c = &prior.gpt.config;
    let opts =
        SampleOptions { temperature: r.temperature.unwrap_or(1.0), top_k: r.top_k, seed: seed_from_f64(r.seed.unwrap_or(0.0))?, class: r.class, frames: None };
    let total = c.positions();
    let every = r.report_every.filter(|&e| e > 0).unwrap_or(total.div_ceil(64));
    let report = |done: usize, grid: &[u32]| {
        if let Some(f) = &on_progress {
            let progress = js_sys::Object::new();
            for (k, v) in [("done", JsValue::from(done as u32)), ("total", JsValue::from(total as u32)), ("grid", Uint32Array::from(grid).into())] {
                js_sys::Reflect::set(&progress, &k.into(), &v).expect("a plain object");
            }
            let _ = f.call1(&JsValue::NULL, &progress);
        }
    };
    let kept = (!prefix.is_empty()).then(|| prefix.len() / (c.latent[1] * c.latent[2]));
    let grid = prior.sample(&m.backend, &opts, &prefix, every, report).await?;
    let [lt, lh, lw] = c.latent;
    let out = prior.tokenizer.decode(&m.backend, &Tokens { shape: [1, lt, lh, lw], codes: grid.clone() }, |_, _| {}).await?;
    Ok(Sampled {
        tokens: Uint32Array::from(&grid[..]),
        latent: c.latent,
        video: Uint8Array::from(&out.rgb[..]),
        size: [out.frames, out.height, out.width],
        prefix_frames: input.as_ref().and(kept),
        input_size: input.as_ref().map(|v| [v.frames, v.height, v.width]),
        input: input.map_or(JsValue::UNDEFINED, |v| Uint8Array::from(&v.rgb[..]).into()),
    })
}
