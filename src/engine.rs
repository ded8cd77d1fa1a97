//! The engine handle both front ends hold: one device (the CPU path or a wgpu/WebGPU adapter) and
//! the models loaded on it. The command line (`src/bin/videogpt`) opens one per command; the web
//! page's Worker (`src/web/`) keeps one for the page's life. Everything a workflow does with the
//! models is in `workflow` (one place each); this module only owns them.
//!
//! Model code is generic over [`Backend`], and generic code cannot be stored as a value, so an
//! [`Engine`] is an enum over the two backends and [`on_engine!`](crate::on_engine) instantiates a
//! body once per backend. That macro is the one place where the choice of device is matched.

use std::cell::RefCell;
use std::rc::Rc;

use crate::backend::Backend;
use crate::video::Resize;
use crate::workflow::{Prior, Tokenizer};
use crate::{Cpu, Error, Gpu, Result};

/// Which compute path runs the models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
pub enum Device {
    /// The plain-Rust CPU path (WebAssembly in the browser).
    Cpu,
    /// The WGSL kernels on the first wgpu adapter (WebGPU in the browser).
    Gpu,
}

impl std::str::FromStr for Device {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "gpu" | "webgpu" => Ok(Device::Gpu),
            other => Err(Error::Input(format!("device must be webgpu, cpu or auto, not {other:?}"))),
        }
    }
}

/// How clips are brought to a tokenizer's input. Changing it keeps the weights where they are
/// ([`Models::set_input`]): the VQ-VAE has no position embeddings, so the same weights run at
/// any multiple of their spatial stride.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::Args))]
#[cfg_attr(target_arch = "wasm32", derive(serde::Deserialize), serde(default))]
pub struct InputOptions {
    /// Run at this resolution instead of the file's (a multiple of the spatial stride; the
    /// VQ-VAE has no position embeddings, so its weights work at any size).
    #[cfg_attr(not(target_arch = "wasm32"), arg(long))]
    pub resolution: Option<usize>,
    /// antialias: bilinear with antialiasing (what our models are trained on); videogpt:
    /// VideoGPT's own preprocess exactly (bilinear, no antialiasing).
    #[cfg_attr(not(target_arch = "wasm32"), arg(long, value_enum, default_value = "antialias"))]
    #[cfg_attr(target_arch = "wasm32", serde(deserialize_with = "or_default"))]
    pub resize: Resize,
}

/// A field JS may leave `undefined` or `null`: the default then.
#[cfg(target_arch = "wasm32")]
fn or_default<'de, D: serde::Deserializer<'de>, T: serde::Deserialize<'de> + Default>(d: D) -> std::result::Result<T, D::Error> {
    Ok(<Option<T> as serde::Deserialize>::deserialize(d)?.unwrap_or_default())
}

/// A model file's bytes and the name errors and `.vgt` files give it (a path on the command line,
/// the index id on the page).
#[derive(Clone, Copy)]
pub struct ModelFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

impl<'a> ModelFile<'a> {
    pub fn new(name: &'a str, bytes: &'a [u8]) -> Self {
        ModelFile { name, bytes }
    }

    /// The id `.vgt` files record: the name without its folders and extension (`natural-64`
    /// for `models/natural-64.safetensors`, and for the page's `natural-64`).
    pub fn id(&self) -> &'a str {
        let base = self.name.rsplit(['/', '\\']).next().unwrap_or(self.name);
        match base.rsplit_once('.') {
            Some((stem, ext)) if !stem.is_empty() && ["safetensors", "ckpt", "pt", "pth"].contains(&ext.to_ascii_lowercase().as_str()) => stem,
            _ => base,
        }
    }

    /// Name this file in a weights error about it.
    pub fn blame(&self, e: Error) -> Error {
        match e {
            Error::Weights(m) => Error::Weights(format!("{}: {m}", self.name)),
            other => other,
        }
    }
}

/// The models loaded on one backend. They sit behind `Rc`, so a running job keeps its model alive
/// while the page loads another.
pub struct Models<B: Backend> {
    pub backend: B,
    tokenizer: RefCell<Option<Rc<Tokenizer<B>>>>,
    prior: RefCell<Option<Rc<Prior<B>>>>,
}

impl<B: Backend> Models<B> {
    pub fn new(backend: B) -> Rc<Self> {
        Rc::new(Models { backend, tokenizer: RefCell::new(None), prior: RefCell::new(None) })
    }

    /// The VQ-VAE that reconstructs, encodes and decodes.
    pub fn tokenizer(&self) -> Result<Rc<Tokenizer<B>>> {
        self.tokenizer.borrow().clone().ok_or_else(|| Error::Input("no VQ-VAE loaded: load one first".into()))
    }

    /// The GPT prior (with its own VQ-VAE) that samples and continues clips.
    /// The loaded prior, if any.
    pub fn loaded_prior(&self) -> Option<Rc<Prior<B>>> {
        self.prior.borrow().clone()
    }

    pub fn prior(&self) -> Result<Rc<Prior<B>>> {
        self.prior.borrow().clone().ok_or_else(|| Error::Input("no GPT prior loaded: load one first".into()))
    }

    /// The reconstruction tokenizer, or the prior's own when `for_prior`.
    pub fn tokenizer_for(&self, for_prior: bool) -> Result<Rc<Tokenizer<B>>> {
        if for_prior {
            Ok(self.prior()?.tokenizer.clone())
        } else {
            self.tokenizer()
        }
    }

    /// Load a VQ-VAE file (safetensors; see `checkpoint::model_bytes` for original checkpoints)
    /// as the tokenizer, replacing the one before.
    pub fn load_tokenizer(&self, file: ModelFile, input: InputOptions) -> Result<Rc<Tokenizer<B>>> {
        let t = Rc::new(Tokenizer::load(&self.backend, file.bytes, "").map_err(|e| file.blame(e))?.named(file.id()).with_input(input)?);
        *self.tokenizer.borrow_mut() = Some(t.clone());
        Ok(t)
    }

    /// Run the loaded tokenizer at another resolution or with another resize filter: the weights
    /// stay on the device (nothing is loaded again).
    pub fn set_input(&self, input: InputOptions) -> Result<Rc<Tokenizer<B>>> {
        let t = Rc::new(self.tokenizer()?.with_input(input)?);
        *self.tokenizer.borrow_mut() = Some(t.clone());
        Ok(t)
    }

    /// Load a GPT prior: its VQ-VAE under `vqvae.` in the same file, or a separate VQ-VAE file.
    pub fn load_prior(&self, gpt: ModelFile, vqvae: Option<ModelFile>) -> Result<Rc<Prior<B>>> {
        let p = Rc::new(Prior::load(&self.backend, gpt, vqvae)?);
        *self.prior.borrow_mut() = Some(p.clone());
        Ok(p)
    }
}

/// One device and its models: what the CLI and the web page hold.
pub enum Engine {
    Cpu(Rc<Models<Cpu>>),
    Gpu(Rc<Models<Gpu>>),
}

impl Engine {
    /// Open `device`; the GPU fails with a [`Error::Gpu`] when no adapter opens.
    pub async fn open(device: Device) -> Result<Engine> {
        Ok(match device {
            Device::Cpu => Engine::Cpu(Models::new(Cpu)),
            Device::Gpu => Engine::Gpu(Models::new(Gpu::new().await?)),
        })
    }

    /// The GPU when an adapter opens, else the CPU and why the GPU was not used.
    pub async fn open_auto() -> (Engine, Option<Error>) {
        match Gpu::new().await {
            Ok(g) => (Engine::Gpu(Models::new(g)), None),
            Err(e) => (Engine::Cpu(Models::new(Cpu)), Some(e)),
        }
    }

    pub fn device(&self) -> Device {
        match self {
            Engine::Cpu(_) => Device::Cpu,
            Engine::Gpu(_) => Device::Gpu,
        }
    }

    /// The GPU adapter's description; empty on the CPU.
    pub fn adapter(&self) -> String {
        match self {
            Engine::Cpu(_) => String::new(),
            Engine::Gpu(m) => m.backend.describe(),
        }
    }

    pub fn gpu(&self) -> Option<&Gpu> {
        match self {
            Engine::Cpu(_) => None,
            Engine::Gpu(m) => Some(&m.backend),
        }
    }
}

/// Evaluate `$body` with `$m` bound to the engine's `Rc<Models<B>>` for its backend `B`: the body
/// is instantiated once per backend, and both arms must have the same type (a `Result`, a
/// `Promise`).
#[macro_export]
macro_rules! on_engine {
    ($engine:expr, |$m:ident| $body:expr) => {
        match $engine {
            $crate::engine::Engine::Cpu(models) => {
                let $m = models.clone();
                $body
            }
            $crate::engine::Engine::Gpu(models) => {
                let $m = models.clone();
                $body
            }
        }
    };
}
