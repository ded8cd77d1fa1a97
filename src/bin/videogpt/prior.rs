//! The commands that run a GPT prior: `sample` and `score`, files in and out around
//! `videogpt::workflow::Prior`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use videogpt::backend::Backend;
use videogpt::engine::{Device, InputOptions, ModelFile};
use videogpt::gpt::{FrameFeatures, Gpt, SampleOptions};
use videogpt::tokens::{self, Tokens};
use videogpt::video::{
    self,
    io::{read_video, read_video_frames},
    Resize,
};
use videogpt::workflow::Prior;
use videogpt::{bail, on_engine, Error, Result};

use crate::commands::{in_file, in_input, is_vgt, open_engine, read_input, read_model, require_extension};
use crate::files::refuse_overwrite;
use crate::files::{write_clip, write_tokens};

pub struct SampleJob<'a> {
    pub model: &'a Path,
    pub vqvae: Option<&'a Path>,
    pub output: &'a Path,
    pub tokens: Option<&'a Path>,
    pub n: usize,
    pub opts: &'a SampleOptions,
    pub prefix: Option<&'a (PathBuf, usize)>,
    /// The first frame of --prefix's window.
    pub start: usize,
    pub cond_frame: Option<&'a Path>,
    pub input: InputOptions,
}

/// Sample with the prior on the GPU (the WGSL decoding path) or the CPU; decode on the same.
pub fn sample(device: Device, job: &SampleJob) -> Result<()> {
    on_engine!(&open_engine(device)?, |m| sample_on(&m.backend, job))
}

/// A GPT file and, where given, the VQ-VAE file it was trained over.
fn load_prior<B: Backend>(b: &B, model: &Path, vqvae: Option<&Path>) -> Result<Prior<B>> {
    let gpt_bytes = read_model(model)?;
    let vq_bytes = vqvae.map(read_model).transpose()?;
    let (gpt_name, vq_name) = (model.display().to_string(), vqvae.map(|p| p.display().to_string()));
    let vq = vq_bytes.as_deref().zip(vq_name.as_deref()).map(|(bytes, name)| ModelFile::new(name, bytes));
    Prior::load(b, ModelFile::new(&gpt_name, &gpt_bytes), vq)
}

fn sample_on<B: Backend>(b: &B, job: &SampleJob) -> Result<()> {
    if let Some(t) = job.tokens {
        require_extension(t, "npy", "tokens")?;
    }
    if job.n == 0 {
        bail!(Input, "--n must be at least 1");
    }
    let mut inputs = vec![job.model];
    inputs.extend(job.vqvae);
    inputs.extend(job.prefix.map(|(p, _)| p.as_path()));
    refuse_overwrite(job.output, &inputs)?;
    // the prefix clip is resized as --resize says; the GPT fixes the resolution
    let prior = load_prior(b, job.model, job.vqvae)?.with_resize(job.input.resize);
    let frames = frame_features(&prior.gpt, job.cond_frame)?;
    let job_opts = SampleOptions { frames, ..job.opts.clone() };
    let [lt, lh, lw] = prior.gpt.config.latent;
    let prefix = match job.prefix {
        Some((clip, frames)) => {
            if *frames == 0 || *frames >= lt {
                bail!(Input, "--prefix-frames must be between 1 and {} (the GPT's latent frames)", lt - 1);
            }
            // only the window it continues is decoded: a prefix may be a long film
            let clip = read_video_frames(clip, job.start, prior.tokenizer.config().sequence_length)?;
            let first = prior.tokenizer.windows(clip.frames)?.0.remove(0);
            let (codes, _) = pollster::block_on(prior.tokenizer.encode(b, &prior.tokenizer.preprocess(b, &clip, first)?))?;
            prior.prefix(&codes, *frames)?
        }
        None => Vec::new(),
    };
    let (n, total) = (job.n, prior.gpt.config.positions() - prefix.len());
    let started = Instant::now();
    let mut all_codes = Vec::new();
    for s in 0..n {
        let opts = SampleOptions { seed: job.opts.seed.wrapping_add(s as u64), ..job_opts.clone() };
        let mut shown = 0;
        let progress = |drawn: usize, _: &[u32]| {
            let done = (drawn - prefix.len()) * 10 / total.max(1);
            if done > shown {
                shown = done;
                eprint!("\rsample {}/{n}: {}%  ({:.1}s)", s + 1, done * 10, started.elapsed().as_secs_f64());
            }
        };
        let grid = pollster::block_on(prior.sample(b, &opts, &prefix, total.div_ceil(10), progress))?;
        eprintln!();
        all_codes.extend(grid);
    }
    let tokens = Tokens { shape: [n, lt, lh, lw], codes: all_codes };
    let mut out = pollster::block_on(prior.tokenizer.decode(b, &tokens, |_, _| {}))?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("{} tokens in {seconds:.1}s ({:.0} tokens/s with decoding)", n * total, (n * total) as f64 / seconds);
    if let Some(t) = job.tokens {
        write_tokens(t, &tokens, &inputs)?;
    }
    out.fps = Some(30.0);
    write_clip(job.output, &out, &inputs)?;
    eprintln!("wrote {n} sampled clips ({} frames) to {}", out.frames, job.output.display());
    Ok(())
}

/// The features of `--cond-frame` for a frame-conditioned GPT: its first n_cond_frames frames,
/// preprocessed to the VQ-VAE's resolution with VideoGPT's own resize (what its frame-conditioned
/// priors were trained on), through the ResNet.
fn frame_features(gpt: &Gpt, cond_frame: Option<&Path>) -> Result<Option<FrameFeatures>> {
    Ok(match (cond_frame, gpt.config.n_cond_frames) {
        (None, 0) => None,
        (Some(_), 0) => bail!(Input, "this GPT is not frame-conditioned; --cond-frame does not apply"),
        (None, n) => bail!(Input, "this GPT is conditioned on {n} frame(s): give them with --cond-frame IMAGE_OR_CLIP"),
        (Some(path), n) => {
            let clip = read_video(path)?;
            if clip.frames < n {
                bail!(Input, "{} has {} frame(s); the GPT is conditioned on {n}", path.display(), clip.frames);
            }
            let x = video::preprocess(&clip, gpt.config.resolution, Some(n), Resize::VideoGpt)?;
            Some(gpt.frame_features(&x)?)
        }
    })
}

pub fn score(model: &Path, vqvae: Option<&Path>, tokens_path: &Path, class: Option<usize>, cond_frame: Option<&Path>) -> Result<()> {
    let gpt_bytes = read_model(model)?;
    let vq_bytes = vqvae.map(read_model).transpose()?;
    let gpt = Gpt::load(&gpt_bytes, vq_bytes.as_deref()).map_err(|e| in_file(e, model))?;
    let tokens = if is_vgt(tokens_path) {
        // the tokens of the prior's VQ-VAE (made from its own file, so the hash is not the prior's)
        // a compressed file decodes when it is coded under this very prior
        let coding = videogpt::vgt::CodingPrior::new(&gpt, &gpt_bytes);
        let f = videogpt::vgt::read_with(&read_input(tokens_path)?, Some(&coding), |_, _| {}).map_err(|e| in_input(e, tokens_path))?;
        if f.n_codes != gpt.config.n_codes {
            bail!(Input, "{} indexes {} codes; this GPT models {}", tokens_path.display(), f.n_codes, gpt.config.n_codes);
        }
        f.tokens
    } else {
        let file = std::fs::File::open(tokens_path).map_err(|e| Error::Io(format!("cannot open {}: {e}", tokens_path.display())))?;
        tokens::npy::read(std::io::BufReader::new(file))?
    };
    if tokens.latent() != gpt.config.latent {
        bail!(Input, "tokens of shape {:?} per clip; this GPT models {:?}", tokens.latent(), gpt.config.latent);
    }
    let frames = frame_features(&gpt, cond_frame)?;
    for (i, clip) in tokens.clips().enumerate() {
        println!("clip {i}: {:.6} bits per token", gpt.bits_per_token_with(clip, class, frames.as_ref())?);
    }
    Ok(())
}
