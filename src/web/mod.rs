//! The engine as the web page sees it: wasm-bindgen bindings that `www/worker.js` drives. One
//! [`Engine`] owns one device (a WebGPU adapter, or the CPU path where there is none), the VQ-VAE
//! used for reconstruction and optionally a GPT prior with its own VQ-VAE. Every method that
//! computes returns a Promise; errors are JS `Error`s whose `name` says the kind
//! (`WeightsError`, `InputError`, `GpuError`, `DeviceLostError`, `IoError`).

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Float64Array, Function, Promise, Reflect, Uint32Array, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::backend::Backend;
use crate::gpt::SampleOptions;
use crate::session::{seed_from_f64, Prior, Tokenizer};
use crate::tokens::Tokens;
use crate::video;
use crate::{Cpu, Error, Gpu, Result};

mod convert;
mod input;
use convert::{js_error, now_ms, object, shape, vqvae_info, Frames, InputOptions, SampleArgs};
use input::{model_input, window_input, MaybeGpu};

#[wasm_bindgen(start)]
pub fn start() {
    // a Rust panic shows its message in the console instead of a bare "unreachable"
    console_error_panic_hook::set_once();
}

/// The models loaded on one backend. Models sit behind `Rc` so a running job keeps its model
/// alive while the page loads another.
struct Models<B: Backend> {
    backend: B,
    tokenizer: RefCell<Option<Rc<Tokenizer<B>>>>,
    prior: RefCell<Option<Rc<Prior<B>>>>,
}

impl<B: Backend + 'static> Models<B> {
    fn new(backend: B) -> Rc<Self> {
        Rc::new(Models { backend, tokenizer: RefCell::new(None), prior: RefCell::new(None) })
    }

    fn vqvae(&self) -> Result<Rc<Tokenizer<B>>> {
        self.tokenizer.borrow().clone().ok_or_else(|| Error::Input("no VQ-VAE loaded: call loadVqvae first".into()))
    }

    fn prior(&self) -> Result<Rc<Prior<B>>> {
        self.prior.borrow().clone().ok_or_else(|| Error::Input("no GPT prior loaded: call loadPrior first".into()))
    }

    /// The reconstruction tokenizer, or the prior's when `for_prior`.
    fn tokenizer(&self, for_prior: bool) -> Result<Rc<dyn AsTokenizer<B>>> {
        Ok(if for_prior { self.prior()? as Rc<dyn AsTokenizer<B>> } else { self.vqvae()? as Rc<dyn AsTokenizer<B>> })
    }
}

/// Either the reconstruction tokenizer or a prior's, behind one `Rc`.
trait AsTokenizer<B: Backend> {
    fn tokenizer(&self) -> &Tokenizer<B>;
}
impl<B: Backend> AsTokenizer<B> for Tokenizer<B> {
    fn tokenizer(&self) -> &Tokenizer<B> {
        self
    }
}
impl<B: Backend> AsTokenizer<B> for Prior<B> {
    fn tokenizer(&self) -> &Tokenizer<B> {
        &self.tokenizer
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

#[wasm_bindgen]
pub struct Engine {
    device: Device,
    adapter: String,
    /// Whether `crashForTest` may panic: only an engine the tests create with `testHooks`.
    test_hooks: bool,
}

#[wasm_bindgen]
impl Engine {
    /// Open a backend: `"webgpu"` (fails without an adapter), `"cpu"`, or `"auto"` (WebGPU when
    /// an adapter opens, else the CPU; `fallbackReason` then says why). `test_hooks` enables
    /// `crashForTest` (the browser tests only).
    pub async fn create(device: String, test_hooks: bool) -> std::result::Result<Engine, JsValue> {
        let cpu = |why: String| Engine { device: Device::Cpu(Models::new(Cpu)), adapter: why, test_hooks };
        let gpu = |gpu: Gpu| Engine { adapter: gpu.describe(), device: Device::Gpu(Models::new(gpu)), test_hooks };
        match device.as_str() {
            "cpu" => Ok(cpu(String::new())),
            "webgpu" | "gpu" => Ok(gpu(Gpu::new().await.map_err(js_error)?)),
            "auto" => Ok(match Gpu::new().await {
                Ok(g) => gpu(g),
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

    /// Load the reconstruction VQ-VAE from safetensors bytes, or from an original VideoGPT
    /// checkpoint (`.ckpt`/`.pt`, converted here without running its pickle); returns its hparams.
    /// `options`: `{ resolution, resize }` — run at another resolution than the file's (a
    /// multiple of its spatial stride), and `'antialias'` (default) or `'videogpt'` resizing.
    #[wasm_bindgen(js_name = loadVqvae)]
    pub fn load_vqvae(&self, bytes: &[u8], options: JsValue) -> std::result::Result<JsValue, JsValue> {
        fn load<B: Backend>(m: &Models<B>, bytes: &[u8], o: &InputOptions) -> Result<JsValue> {
            let t = o.apply(Tokenizer::load(&m.backend, bytes, "")?)?;
            let info = vqvae_info(t.config());
            Reflect::set(&info, &"hash".into(), &crate::vgt::hex(&t.hash).into()).expect("a plain object");
            Reflect::set(&info, &"inputResolution".into(), &(t.resolution as u32).into()).expect("a plain object");
            *m.tokenizer.borrow_mut() = Some(Rc::new(t));
            Ok(info)
        }
        let o = InputOptions::from_js(options).map_err(js_error)?;
        let bytes = crate::checkpoint::model_bytes(bytes).map_err(js_error)?;
        match &self.device {
            Device::Gpu(m) => load(m, &bytes, &o),
            Device::Cpu(m) => load(m, &bytes, &o),
        }
        .map_err(js_error)
    }

    /// Load a GPT prior (its VQ-VAE under `vqvae.` in the same file, or given separately), from
    /// safetensors or an original VideoGPT checkpoint.
    #[wasm_bindgen(js_name = loadPrior)]
    pub fn load_prior(&self, bytes: &[u8], vqvae: Option<Vec<u8>>) -> std::result::Result<JsValue, JsValue> {
        fn load<B: Backend>(m: &Models<B>, bytes: &[u8], vq: Option<&[u8]>) -> Result<JsValue> {
            let prior = Prior::load(&m.backend, bytes, vq)?;
            let c = &prior.gpt.config;
            let info = object(&[
                ("kind", "gpt".into()),
                ("hiddenDim", (c.hidden_dim as u32).into()),
                ("heads", (c.heads as u32).into()),
                ("layers", (c.layers as u32).into()),
                ("attnType", format!("{:?}", c.attn_type).to_lowercase().into()),
                ("classes", (c.class_cond_dim as u32).into()),
                ("latent", shape(&c.latent)),
                ("vqvae", vqvae_info(prior.tokenizer.config())),
            ]);
            *m.prior.borrow_mut() = Some(Rc::new(prior));
            Ok(info)
        }
        let bytes = crate::checkpoint::model_bytes(bytes).map_err(js_error)?;
        let vqvae = vqvae.map(|v| crate::checkpoint::model_bytes(&v).map(|b| b.into_owned())).transpose().map_err(js_error)?;
        match &self.device {
            Device::Gpu(m) => load(m, &bytes, vqvae.as_deref()),
            Device::Cpu(m) => load(m, &bytes, vqvae.as_deref()),
        }
        .map_err(js_error)
    }

    /// Frames (T×H×W×3 uint8 RGB, or on WebGPU an array of T `ImageBitmap`s) → `{tokens, latent,
    /// input}`: the first model window's codes and the model-sized frames they came from. `forPrior` uses the prior's VQ-VAE.
    pub fn encode(&self, data: JsValue, frames: usize, height: usize, width: usize, for_prior: bool) -> Promise {
        on_device!(self, |m| async move {
            let model = m.tokenizer(for_prior)?;
            let (b, t) = (&m.backend, model.tokenizer());
            let x = model_input(b, t, &Frames::from_js(data, frames, height, width)?)?;
            let (codes, latent) = t.encode(b, &x).await?;
            let input = video::input_to_video(&b.read_volume(&x).await?)?;
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
            let out = model.tokenizer().decode(&m.backend, &Tokens { shape: [1, t, h, w], codes: tokens }, |_, _| {}).await?;
            Ok::<_, Error>(object(&[("video", Uint8Array::from(&out.rgb[..]).into()), ("size", shape(&[out.frames, out.height, out.width]))]))
        })
    }

    /// Encode RGB frames into a `.vgt` token file (docs/vgt-format.md) naming the loaded model as
    /// `model_id`, every model window of them (trailing frames short of a window are left out);
    /// `fps` (0: none) is stored with it.
    #[wasm_bindgen(js_name = encodeVgt)]
    pub fn encode_vgt(&self, data: JsValue, frames: usize, height: usize, width: usize, model_id: String, fps: f32) -> Promise {
        on_device!(self, |m| async move {
            let (b, t) = (&m.backend, m.vqvae()?);
            // every model window of the clip, one after another (as `videogpt encode` does)
            let frames = Frames::from_js(data, frames, height, width)?;
            let (windows, _) = t.windows(frames.count())?;
            let (mut codes, mut latent) = (Vec::new(), [0; 3]);
            for w in &windows {
                let (window_codes, window_latent) = t.encode(b, &window_input(b, &t, &frames, w.clone())?).await?;
                codes.extend(window_codes);
                latent = window_latent;
            }
            let [lt, lh, lw] = latent;
            let file = t.token_file(model_id, Tokens { shape: [windows.len(), lt, lh, lw], codes }, (fps > 0.0).then_some(fps));
            Ok::<_, Error>(JsValue::from(Uint8Array::from(&crate::vgt::write(&file)?[..])))
        })
    }

    /// Decode a `.vgt` token file with the loaded VQ-VAE (refused when the file names another
    /// model): `{video, size, fps, modelId, tokens, latent}`, the clips one after another.
    #[wasm_bindgen(js_name = decodeVgt)]
    pub fn decode_vgt(&self, bytes: Vec<u8>) -> Promise {
        on_device!(self, |m| async move {
            let file = crate::vgt::read(&bytes)?;
            let t = m.vqvae()?;
            t.check_token_file(&file)?;
            let latent = file.tokens.latent();
            let v = t.decode(&m.backend, &file.tokens, |_, _| {}).await?;
            Ok::<_, Error>(object(&[
                ("video", Uint8Array::from(&v.rgb[..]).into()),
                ("size", shape(&[v.frames, v.height, v.width])),
                ("fps", file.fps.map_or(JsValue::UNDEFINED, |f| f.into())),
                ("modelId", file.model_id.into()),
                ("tokens", Uint32Array::from(&file.tokens.codes[..]).into()),
                ("latent", shape(&latent)),
            ]))
        })
    }

    /// Encode then decode; also PSNR and SSIM per frame against the model-sized input, the time
    /// it took (and each half's on the CPU, where they can be told apart), and the tokens as a `.vgt` file naming the model `model_id`.
    pub fn reconstruct(&self, data: JsValue, frames: usize, height: usize, width: usize, model_id: String, fps: f32) -> Promise {
        on_device!(self, |m| async move {
            let (b, t) = (&m.backend, m.vqvae()?);
            let started = now_ms();
            let x = model_input(b, &t, &Frames::from_js(data, frames, height, width)?)?;
            let preprocess_ms = now_ms() - started;
            let r = t.reconstruct(b, &x, &now_ms).await?;
            let [lt, lh, lw] = r.latent;
            let vgt = crate::vgt::write(&t.token_file(model_id, Tokens { shape: [1, lt, lh, lw], codes: r.tokens.clone() }, (fps > 0.0).then_some(fps)))?;
            let (codes, latent, input, output) = (&r.tokens, r.latent, &r.input, &r.output);
            Ok::<_, Error>(object(&[
                ("tokens", Uint32Array::from(&codes[..]).into()),
                ("latent", shape(&latent)),
                ("input", Uint8Array::from(&input.rgb[..]).into()),
                ("output", Uint8Array::from(&output.rgb[..]).into()),
                ("size", shape(&[input.frames, input.height, input.width])),
                ("psnr", Float64Array::from(&r.psnr_per_frame()?[..]).into()),
                ("ssim", Float64Array::from(&r.ssim_per_frame()?[..]).into()),
                ("vgt", Uint8Array::from(&vgt[..]).into()),
                ("totalMs", (preprocess_ms + r.total_ms).into()),
                ("encodeMs", r.split_ms.map_or(JsValue::UNDEFINED, |(e, _)| (preprocess_ms + e).into())),
                ("decodeMs", r.split_ms.map_or(JsValue::UNDEFINED, |(_, d)| d.into())),
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

    /// Panic inside a future, as an engine bug would (for testing that the page recovers). A
    /// test hook: an engine created without `test_hooks` refuses with an error.
    #[wasm_bindgen(js_name = crashForTest)]
    pub fn crash_for_test(&self) -> Promise {
        if !self.test_hooks {
            return Promise::reject(&js_error(Error::Input("crashForTest is a test hook: this engine was created without testHooks".into())));
        }
        future_to_promise(async { panic!("a deliberate panic (crashForTest)") })
    }

    /// The GPU runtime's counters since the engine started or since the last call with
    /// `reset` (dispatches, buffers and bytes created, bind groups, submits, map waits, bytes read
    /// back, dispatches per kernel); `null` on the CPU path.
    #[wasm_bindgen(js_name = gpuStats)]
    pub fn gpu_stats(&self, reset: bool) -> JsValue {
        let Device::Gpu(m) = &self.device else { return JsValue::NULL };
        let s = m.backend.stats();
        if reset {
            m.backend.reset_stats();
        }
        let kernels = js_sys::Object::new();
        for (k, v) in &s.by_kernel {
            Reflect::set(&kernels, &(*k).into(), &(*v as f64).into()).expect("a plain object");
        }
        object(&[
            ("dispatches", (s.dispatches as f64).into()),
            ("passes", (s.passes as f64).into()),
            ("buffersCreated", (s.buffers_created as f64).into()),
            ("bytesCreated", (s.bytes_created as f64).into()),
            ("bindGroups", (s.bind_groups as f64).into()),
            ("submits", (s.submits as f64).into()),
            ("mapWaits", (s.map_waits as f64).into()),
            ("readbackBytes", (s.readback_bytes as f64).into()),
            ("byKernel", kernels.into()),
        ])
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
        on_device!(self, |m| async move {
            let prior = m.prior()?;
            let c = &prior.gpt.config;
            let opts = SampleOptions {
                temperature: args.temperature.unwrap_or(1.0),
                top_k: args.top_k,
                seed: seed_from_f64(args.seed.unwrap_or(0.0))?,
                class: args.class,
                frames: None,
            };
            let prefix = args.prefix.unwrap_or_default();
            let total = c.positions();
            let every = args.report_every.filter(|&e| e > 0).unwrap_or(total.div_ceil(64));
            let report = |done: usize, grid: &[u32]| {
                let _ = on_progress.call3(&JsValue::NULL, &(done as u32).into(), &(total as u32).into(), &Uint32Array::from(grid));
            };
            let grid = prior.sample(m.backend.as_gpu(), &opts, &prefix, every, report).await?;
            let latent = c.latent;
            let out = prior.tokenizer.decode(&m.backend, &Tokens { shape: [1, latent[0], latent[1], latent[2]], codes: grid.clone() }, |_, _| {}).await?;
            Ok::<_, Error>(object(&[
                ("tokens", Uint32Array::from(&grid[..]).into()),
                ("latent", shape(&latent)),
                ("video", Uint8Array::from(&out.rgb[..]).into()),
                ("size", shape(&[out.frames, out.height, out.width])),
            ]))
        })
    }
}
