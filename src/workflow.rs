//! The workflows the command line and the web page share, written once: cutting a clip into model
//! windows and preprocessing them, encoding to a token grid or a `.vgt` file, decoding token files
//! (refusing another model's), reconstruction with its metrics, model info, loading a prior with
//! its VQ-VAE, and sampling on the CPU or the GPU with progress. `src/bin/videogpt` reads and
//! writes files around these; `src/web/` turns them into Promises and JS objects.

use std::ops::Range;

use std::rc::Rc;

use crate::backend::{Backend, Tensor};
use crate::engine::{InputOptions, ModelFile};
use crate::gpt::{Gpt, GptConfig, SampleOptions};
use crate::tokens::Tokens;
use crate::vgt::{self, TokenFile};
use crate::video::{self, Resize, Video};
use crate::{bail, metrics, Error, Result, VqVae, VqVaeConfig};

/// The largest side a clip may be run or decoded at: a 16-frame clip at 1024² is already 50 M
/// values per activation map per channel.
pub const MAX_RESOLUTION: usize = crate::vqvae::MAX_RESOLUTION;
/// The most frames one decoded clip may have.
pub const MAX_FRAMES: usize = crate::vqvae::MAX_SEQUENCE_LENGTH;

/// A VQ-VAE as a tokenizer: the model, the name and hash `.vgt` files give it, and how clips are
/// brought to its input (resolution, resize filter). Cloning shares the weights.
pub struct Tokenizer<B: Backend> {
    pub vqvae: Rc<VqVae<B>>,
    /// The name `.vgt` files record (the page's model id, the CLI's file stem).
    pub id: String,
    /// `vgt::model_hash` of the file the VQ-VAE came from.
    pub hash: [u8; 16],
    /// The side clips are resized to: the file's `resolution` unless overridden. The VQ-VAE has
    /// no position embeddings, so any multiple of its spatial stride works (spec §1.4).
    pub resolution: usize,
    pub resize: Resize,
}

impl<B: Backend> Clone for Tokenizer<B> {
    fn clone(&self) -> Self {
        Tokenizer { vqvae: self.vqvae.clone(), id: self.id.clone(), hash: self.hash, resolution: self.resolution, resize: self.resize }
    }
}

impl<B: Backend> Tokenizer<B> {
    /// A VQ-VAE file (`prefix` `""`), or the VQ-VAE inside a GPT file (`"vqvae."`).
    pub fn load(b: &B, bytes: &[u8], prefix: &str) -> Result<Self> {
        let vqvae = Rc::new(VqVae::load(b, bytes, prefix)?);
        Ok(Tokenizer { resolution: vqvae.config.resolution, vqvae, id: "model".into(), hash: vgt::model_hash(bytes), resize: Resize::default() })
    }

    /// The name `.vgt` files give the model.
    pub fn named(mut self, id: &str) -> Self {
        self.id = id.to_owned();
        self
    }

    /// The same weights brought clips as `input` says (the file's resolution unless it names one).
    pub fn with_input(&self, input: InputOptions) -> Result<Self> {
        let mut t = self.clone();
        t.resolution = t.vqvae.config.resolution;
        Ok(t.with_resolution(input.resolution)?.with_resize(input.resize))
    }

    /// The latent grid of one model window at the current input: what a clip costs in tokens.
    pub fn input_latent(&self) -> [usize; 3] {
        let c = self.config();
        let [dt, dh, dw] = c.downsample;
        [c.sequence_length / dt, self.resolution / dh, self.resolution / dw]
    }

    pub fn config(&self) -> &VqVaeConfig {
        &self.vqvae.config
    }

    /// Run at `resolution` instead of the file's: a positive multiple of the spatial stride, at
    /// most [`MAX_RESOLUTION`].
    pub fn with_resolution(mut self, resolution: Option<usize>) -> Result<Self> {
        if let Some(r) = resolution {
            let [_, dh, dw] = self.config().downsample;
            let step = dh.max(dw);
            if r == 0 || r > MAX_RESOLUTION || !r.is_multiple_of(step) {
                bail!(Input, "resolution {r} must be a multiple of the model's spatial stride {step}, from {step} to {MAX_RESOLUTION}");
            }
            self.resolution = r;
        }
        Ok(self)
    }

    pub fn with_resize(mut self, resize: Resize) -> Self {
        self.resize = resize;
        self
    }

    /// The model windows of a clip of `frames` frames: consecutive `sequence_length` windows, or
    /// the whole clip trimmed to the temporal stride when it is shorter; and how many trailing
    /// frames were left out.
    pub fn windows(&self, frames: usize) -> Result<(Vec<Range<usize>>, usize)> {
        let c = self.config();
        let (ranges, dropped) = video::windows(frames, c.sequence_length, c.downsample[0]);
        if ranges.is_empty() {
            bail!(Input, "the clip has {frames} frames; the model needs at least {} (its temporal downsample)", c.downsample[0]);
        }
        Ok((ranges, dropped))
    }

    /// One window of a clip in host memory, preprocessed on the device.
    pub fn preprocess(&self, b: &B, clip: &Video, window: Range<usize>) -> Result<Tensor<B>> {
        if window.start == 0 && window.end == clip.frames {
            return b.preprocess(clip, self.resolution, self.resize);
        }
        b.preprocess(&clip.slice(window.start, window.len()), self.resolution, self.resize)
    }

    /// The T'×H'×W' grid a preprocessed window gives.
    pub fn latent(&self, x: &Tensor<B>) -> Result<[usize; 3]> {
        self.config().check_clip(x.dims.t, x.dims.h, x.dims.w)
    }

    /// A preprocessed window → its codes and latent grid.
    pub async fn encode(&self, b: &B, x: &Tensor<B>) -> Result<(Vec<u32>, [usize; 3])> {
        let latent = self.latent(x)?;
        Ok((b.read_codes(&self.vqvae.encode(b, x)?).await?, latent))
    }

    /// Every model window of a clip of `frames` frames → one token grid (B×T'×H'×W'), the windows
    /// preprocessed one at a time by `window` (from the front end's frames: bytes, images, a
    /// file) and encoded in order; `each(i, n)` after window i. Trailing frames that fill no
    /// window are left out (`windows` says how many).
    pub async fn encode_clip(
        &self,
        b: &B,
        frames: usize,
        mut window: impl FnMut(Range<usize>) -> Result<Tensor<B>>,
        mut each: impl FnMut(usize, usize),
    ) -> Result<Tokens> {
        let (ranges, _) = self.windows(frames)?;
        let (mut codes, mut latent) = (Vec::new(), [0; 3]);
        for (i, r) in ranges.iter().enumerate() {
            let (c, l) = self.encode(b, &window(r.clone())?).await?;
            codes.extend(c);
            latent = l;
            each(i, ranges.len());
        }
        Ok(Tokens { shape: [ranges.len(), latent[0], latent[1], latent[2]], codes })
    }

    /// Encode and decode a preprocessed window; `now` (milliseconds) times it. A backend that
    /// computes as it is asked (the CPU) is timed per half; the GPU records both halves and waits
    /// once, for one readback, so only their sum is known there.
    pub async fn reconstruct(&self, b: &B, x: &Tensor<B>, now: &dyn Fn() -> f64) -> Result<Reconstruction> {
        let latent = self.latent(x)?;
        let t0 = now();
        let (codes, h) = self.vqvae.encode_for_decode(b, x)?;
        let t1 = now();
        let y = self.vqvae.decode_embedded(b, h)?;
        let t2 = now();
        let (tokens, input, output) = b.read_reconstruction(&codes, x, &y).await?;
        let t3 = now();
        let split = b.is_eager().then_some((t1 - t0, t2 - t1));
        Ok(Reconstruction { tokens, latent, input, output, total_ms: t3 - t0, split_ms: split })
    }

    /// Refuse a latent grid that would decode to a clip past the limits (before anything is
    /// allocated for it: token files are untrusted input).
    pub fn check_grid(&self, [t, h, w]: [usize; 3]) -> Result<()> {
        let [dt, dh, dw] = self.config().downsample;
        let (frames, height, width) = (t.saturating_mul(dt), h.saturating_mul(dh), w.saturating_mul(dw));
        if frames > MAX_FRAMES || height > MAX_RESOLUTION || width > MAX_RESOLUTION {
            bail!(
                Input,
                "a {t}×{h}×{w} token grid decodes to {frames}×{height}×{width} frames; the limit is {MAX_FRAMES} frames of {MAX_RESOLUTION}×{MAX_RESOLUTION}"
            );
        }
        Ok(())
    }

    /// Decode every clip of a token grid, one after another, calling `on_clip(i, n)` after each.
    pub async fn decode(&self, b: &B, tokens: &Tokens, mut on_clip: impl FnMut(usize, usize)) -> Result<Video> {
        crate::tokens::check_codes(tokens, self.config().n_codes)?;
        self.check_grid(tokens.latent())?;
        let n = tokens.shape[0];
        let mut clips = Vec::with_capacity(n);
        for (i, codes) in tokens.clips().enumerate() {
            clips.push(video::to_video(&self.vqvae.decode_codes(b, codes, tokens.latent()).await?)?);
            on_clip(i, n);
        }
        Video::concat(&clips)
    }

    /// A `.vgt` file of `tokens` naming this model by its id and hash.
    pub fn token_file(&self, tokens: Tokens, fps: Option<f32>) -> TokenFile {
        TokenFile { model_id: self.id.clone(), model_hash: self.hash, n_codes: self.config().n_codes, tokens, fps }
    }

    /// Refuse tokens made with another model: decoding them would give garbage.
    pub fn check_token_file(&self, file: &TokenFile) -> Result<()> {
        file.check_hash(&self.hash, self.config().n_codes)
    }
}

/// One window encoded and decoded.
pub struct Reconstruction {
    pub tokens: Vec<u32>,
    pub latent: [usize; 3],
    /// The model-sized input frames (what the model saw).
    pub input: Video,
    pub output: Video,
    /// Encode, decode and readback, in milliseconds.
    pub total_ms: f64,
    /// (encode, decode) where the backend computes as it is asked (the CPU).
    pub split_ms: Option<(f64, f64)>,
}

impl Reconstruction {
    pub fn psnr_per_frame(&self) -> Result<Vec<f64>> {
        metrics::psnr_per_frame(&self.input, &self.output)
    }
    pub fn ssim_per_frame(&self) -> Result<Vec<f64>> {
        metrics::ssim_per_frame(&self.input, &self.output)
    }
}

/// What a model file holds, read from its metadata and checked by loading it on the CPU.
pub enum ModelInfo {
    VqVae(VqVaeConfig),
    Prior { gpt: GptConfig, vqvae: VqVaeConfig },
}

impl ModelInfo {
    pub fn read(bytes: &[u8]) -> Result<Self> {
        let meta = crate::weights::WeightFile::parse(bytes)?.metadata().clone();
        if meta.get("format").is_some_and(|f| f == "videogpt-gpt") || meta.contains_key("hidden_dim") {
            let gpt = Gpt::load(bytes, None)?;
            let vqvae = VqVae::load(&crate::Cpu, bytes, "vqvae.")?;
            Ok(ModelInfo::Prior { gpt: gpt.config, vqvae: vqvae.config })
        } else {
            Ok(ModelInfo::VqVae(VqVae::load(&crate::Cpu, bytes, "")?.config))
        }
    }
}

/// A GPT prior and the tokenizer whose codes it models (it decodes the samples and encodes
/// prefixes): the GPT file's own `vqvae.` keys, or a separate VQ-VAE file.
pub struct Prior<B: Backend> {
    pub gpt: Gpt,
    /// `vgt::model_hash` of the GPT's file: what compressed `.vgt` files name it by.
    pub hash: [u8; 16],
    pub tokenizer: Rc<Tokenizer<B>>,
    /// The GPT's weights on the GPU, uploaded by the first GPU sample and kept for the next.
    gpu_weights: std::cell::RefCell<Option<std::rc::Rc<crate::gpu::GpuPriorWeights>>>,
}

impl<B: Backend> Prior<B> {
    /// A GPT file and the VQ-VAE it was trained over: under `vqvae.` in the same file, or a
    /// separate file. Weights errors name the file they are about.
    pub fn load(b: &B, gpt: ModelFile, vqvae: Option<ModelFile>) -> Result<Self> {
        let model = Gpt::load(gpt.bytes, vqvae.map(|v| v.bytes)).map_err(|e| gpt.blame(e))?;
        let tokenizer = match vqvae {
            Some(v) => Tokenizer::load(b, v.bytes, "").map_err(|e| v.blame(e))?.named(v.id()),
            None => Tokenizer::load(b, gpt.bytes, "vqvae.").map_err(|e| gpt.blame(e))?.named(gpt.id()),
        };
        Ok(Prior { gpt: model, hash: vgt::model_hash(gpt.bytes), tokenizer: Rc::new(tokenizer), gpu_weights: Default::default() })
    }

    /// A prior to code the token files of `tokenizer` (`.vgt` version 2): the GPT's own VQ-VAE
    /// (`vqvae.` keys) when its file holds one, else `tokenizer` as its VQ-VAE.
    pub fn load_for(b: &B, gpt: ModelFile, tokenizer: ModelFile) -> Result<Self> {
        let own = crate::weights::WeightFile::parse(gpt.bytes).map_err(|e| gpt.blame(e))?.contains("vqvae.codebook.embeddings");
        Prior::load(b, gpt, (!own).then_some(tokenizer))
    }

    /// This prior as the entropy model of token files.
    pub fn coding(&self) -> vgt::CodingPrior<'_> {
        vgt::CodingPrior { gpt: &self.gpt, hash: self.hash }
    }

    /// The prefix clips resized with `resize` (the GPT fixes the resolution).
    pub fn with_resize(mut self, resize: Resize) -> Self {
        self.tokenizer = Rc::new((*self.tokenizer).clone().with_resize(resize));
        self
    }

    /// The first `frames` latent frames of `codes` (a whole grid), to continue by sampling.
    pub fn prefix(&self, codes: &[u32], frames: usize) -> Result<Vec<u32>> {
        let [lt, lh, lw] = self.gpt.config.latent;
        if frames == 0 || frames >= lt {
            bail!(Input, "prefix frames must be between 1 and {} (the GPT's latent frames)", lt - 1);
        }
        if codes.len() != self.gpt.config.positions() {
            bail!(Input, "the prefix clip gives {} tokens, the GPT models {}", codes.len(), self.gpt.config.positions());
        }
        Ok(codes[..frames * lh * lw].to_vec())
    }

    /// Sample one grid: with the WGSL sampler on the GPU backend, else on the CPU.
    /// `report(done, grid)` is called about every `every` tokens.
    pub async fn sample(&self, b: &B, opts: &SampleOptions, prefix: &[u32], every: usize, mut report: impl FnMut(usize, &[u32])) -> Result<Vec<u32>> {
        if let Some(gpu) = b.as_gpu() {
            // the weights stay on the GPU between samples (a page samples again and again)
            let cached = self.gpu_weights.borrow().clone();
            let prior = match cached {
                Some(w) => crate::gpu::GpuPrior::with_weights(gpu, &self.gpt, w),
                None => {
                    let prior = crate::gpu::GpuPrior::new(gpu, &self.gpt)?;
                    *self.gpu_weights.borrow_mut() = Some(prior.weights());
                    prior
                }
            };
            return prior.sample(opts, prefix, every, report).await;
        }
        let every = every.max(1);
        let mut since = 0;
        self.gpt.sample(opts, prefix, |i, grid| {
            since += 1;
            if since >= every || i + 1 == grid.len() {
                since = 0;
                report(i + 1, grid);
            }
        })
    }
}

/// The seed of a sample as JavaScript gives it (a double): a whole number up to 2^53 − 1.
pub fn seed_from_f64(seed: f64) -> Result<u64> {
    if !(seed >= 0.0 && seed.fract() == 0.0 && seed <= 9.007_199_254_740_991e15) {
        return Err(Error::Input(format!("seed must be a whole number from 0 to 2^53-1, got {seed}")));
    }
    Ok(seed as u64)
}
