//! `videogpt`: the native command line over the same engine the web page runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand, ValueEnum};
use videogpt::backend::Backend;
use videogpt::tokens::{self, Tokens};
use videogpt::video::{self, io::read_video, io::write_video, Video};
use videogpt::{bail, metrics, Cpu, Error, Gpu, Result, VqVae, VqVaeConfig};

mod bench;
mod serve;

#[derive(Parser)]
#[command(name = "videogpt", version, about = "VideoGPT VQ-VAE video tokenizer on the CPU and on wgpu/WebGPU")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum, PartialEq, Eq, Debug)]
pub enum Device {
    Cpu,
    Gpu,
}

/// What every model-running command takes.
#[derive(clap::Args)]
struct Job {
    /// VQ-VAE weights: .safetensors with VideoGPT state_dict keys and hparams in its metadata.
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    input: PathBuf,
    #[arg(long)]
    output: PathBuf,
    /// cpu: the plain-Rust path; gpu: the WGSL kernels on the first wgpu adapter.
    #[arg(long, value_enum, default_value = "cpu")]
    device: Device,
}

#[derive(Subcommand)]
enum Command {
    /// Print a VQ-VAE's or a GPT prior's hparams, parameter count and latent shape.
    Info { model: PathBuf },
    /// Video (.npy uint8 T×H×W×3, .y4m, or anything ffmpeg reads) → tokens: .npy (int32) or
    /// .vgt (bit-packed, names the model; docs/vgt-format.md).
    Encode(Job),
    /// Tokens (.npy, T'×H'×W' or B×T'×H'×W', or .vgt) → video (.npy, .y4m, or anything ffmpeg
    /// writes).
    Decode {
        #[command(flatten)]
        job: Job,
        /// Frame rate written into the output container (default: the .vgt file's, else 30).
        #[arg(long)]
        fps: Option<f64>,
    },
    /// Encode then decode a video; prints PSNR and SSIM against the model-sized input.
    Reconstruct {
        #[command(flatten)]
        job: Job,
        /// Print the metrics as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sample clips from a GPT prior and decode them with its VQ-VAE, on --device.
    Sample {
        /// GPT weights (.safetensors with VideoGPT's keys; may hold the VQ-VAE under `vqvae.`).
        #[arg(long)]
        model: PathBuf,
        /// The VQ-VAE, when the GPT file does not hold it.
        #[arg(long)]
        vqvae: Option<PathBuf>,
        /// Video of the samples, one after another (.npy, .y4m, or any ffmpeg container).
        #[arg(long)]
        output: PathBuf,
        /// Also write the sampled tokens (.npy, B×T'×H'×W').
        #[arg(long)]
        tokens: Option<PathBuf>,
        #[arg(long, default_value_t = 1)]
        n: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = 1.0)]
        temperature: f32,
        #[arg(long)]
        top_k: Option<usize>,
        /// Class of a class-conditional GPT.
        #[arg(long)]
        class: Option<usize>,
        /// Continue this clip: its first --prefix-frames latent frames are kept, the rest sampled.
        #[arg(long)]
        prefix: Option<PathBuf>,
        /// Latent frames (of T') taken from --prefix.
        #[arg(long, default_value_t = 1)]
        prefix_frames: usize,
        /// Conditioning frames of a frame-conditioned GPT: the first n_cond_frames frames of this
        /// image or clip, preprocessed as the VQ-VAE's input.
        #[arg(long)]
        cond_frame: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "cpu")]
        device: Device,
    },
    /// Negative log-likelihood of token grids under a GPT prior, teacher-forced, in bits per token.
    Score {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        vqvae: Option<PathBuf>,
        /// Tokens (.npy, T'×H'×W' or B×T'×H'×W').
        #[arg(long)]
        tokens: PathBuf,
        #[arg(long)]
        class: Option<usize>,
        /// Conditioning frames of a frame-conditioned GPT (the same for every clip).
        #[arg(long)]
        cond_frame: Option<PathBuf>,
    },
    /// Time encode+decode of a 16×64×64 clip for a VideoGPT-width and a small model, on the
    /// CPU and on the GPU, and the PyTorch reference on the CPU when python3 has torch.
    Bench(bench::Args),
    /// Serve the web demo on 127.0.0.1.
    Serve(serve::Args),
    /// Write a randomly initialised VQ-VAE (for tests and benchmarks; defaults are VideoGPT's).
    RandomModel {
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value_t = 240)]
        n_hiddens: usize,
        #[arg(long, default_value_t = 4)]
        n_res_layers: usize,
        #[arg(long, default_value_t = 256)]
        embedding_dim: usize,
        #[arg(long, default_value_t = 2048)]
        n_codes: usize,
        /// T,H,W factors.
        #[arg(long, default_value = "4,4,4")]
        downsample: String,
        #[arg(long, default_value_t = 64)]
        resolution: usize,
        #[arg(long, default_value_t = 16)]
        sequence_length: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Initialise the codebook from this clip's encoder outputs, as VideoGPT's training does
        /// on its first batch, so that the random model uses many codes.
        #[arg(long)]
        calibrate: Option<PathBuf>,
    },
    /// Check tokens made elsewhere (the web page, another GPU) against this machine's CPU encoding
    /// of the same clip: equal, or different only where two codes are a float32 near-tie.
    CompareTokens {
        #[arg(long)]
        model: PathBuf,
        /// The clip the tokens were made from (as `encode` reads it).
        #[arg(long)]
        input: PathBuf,
        /// The tokens to check (.npy).
        #[arg(long)]
        tokens: PathBuf,
        /// Largest |d(z, e_a) − d(z, e_b)| / ‖z‖² that counts as a tie.
        #[arg(long, default_value_t = 1e-5)]
        tolerance: f64,
    },
    /// Write a randomly initialised GPT prior over a VQ-VAE, with the VQ-VAE inside the file
    /// under `vqvae.` as VideoGPT's GPT checkpoints hold it (for tests and the demo page).
    RandomPrior {
        #[arg(long)]
        vqvae: PathBuf,
        #[arg(long)]
        output: PathBuf,
        #[arg(long, default_value_t = 576)]
        hidden_dim: usize,
        #[arg(long, default_value_t = 4)]
        heads: usize,
        #[arg(long, default_value_t = 8)]
        layers: usize,
        /// full or sparse.
        #[arg(long, default_value = "sparse")]
        attn_type: String,
        /// Condition on this many frames (adds VideoGPT's ResNet-34 frame encoder, 33.9 M parameters).
        #[arg(long, default_value_t = 0)]
        n_cond_frames: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info { model } => info(&model),
        Command::Encode(j) => with_backend(j.device, |b| encode(b, &j.model, &j.input, &j.output)),
        Command::Decode { job: j, fps } => with_backend(j.device, |b| decode(b, &j.model, &j.input, &j.output, fps)),
        Command::Reconstruct { job: j, json } => {
            with_backend(j.device, |b| reconstruct(b, &j.model, &j.input, &j.output, json, j.device))
        }
        Command::Sample { model, vqvae, output, tokens, n, seed, temperature, top_k, class, prefix, prefix_frames, cond_frame, device } => {
            {
                let opts = videogpt::gpt::SampleOptions { temperature, top_k, seed, class, frames: None };
                let prefix = prefix.map(|p| (p, prefix_frames));
                let job = SampleJob { model: &model, vqvae: vqvae.as_deref(), output: &output, tokens: tokens.as_deref(), n, opts: &opts, prefix: prefix.as_ref(), cond_frame: cond_frame.as_deref() };
                match device {
                    Device::Cpu => sample(&Cpu, None, &job),
                    Device::Gpu => pollster::block_on(Gpu::new()).and_then(|gpu| {
                        eprintln!("GPU: {}", gpu.describe());
                        sample(&gpu, Some(&gpu), &job)
                    }),
                }
            }
        }
        Command::Score { model, vqvae, tokens, class, cond_frame } => score(&model, vqvae.as_deref(), &tokens, class, cond_frame.as_deref()),
        Command::Bench(args) => bench::run(args),
        Command::Serve(args) => serve::run(args),
        Command::RandomModel { output, n_hiddens, n_res_layers, embedding_dim, n_codes, downsample, resolution, sequence_length, seed, calibrate } => {
            let meta = [
                ("embedding_dim", embedding_dim.to_string()),
                ("n_codes", n_codes.to_string()),
                ("n_hiddens", n_hiddens.to_string()),
                ("n_res_layers", n_res_layers.to_string()),
                ("downsample", downsample),
                ("resolution", resolution.to_string()),
                ("sequence_length", sequence_length.to_string()),
            ];
            VqVaeConfig::from_metadata(&meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
                .map_err(|e| match e {
                    Error::Weights(m) => Error::Input(m), // the hparams came from the command line
                    other => other,
                })
                .and_then(|cfg| {
                    let mut bytes = videogpt::vqvae::random_weights(&cfg, seed);
                    if let Some(clip) = calibrate {
                        let windows = model_windows(&cfg, &read_video(&clip)?)?;
                        bytes = videogpt::vqvae::init_codebook_from_clip(&bytes, &windows[0], seed)?;
                    }
                    std::fs::write(&output, bytes)?;
                    eprintln!("wrote a random {} -parameter VQ-VAE to {}", cfg.parameter_count(), output.display());
                    Ok(())
                })
        }
        Command::CompareTokens { model, input, tokens, tolerance } => compare_tokens(&model, &input, &tokens, tolerance),
        Command::RandomPrior { vqvae, output, hidden_dim, heads, layers, attn_type, n_cond_frames, seed } => {
            random_prior(&vqvae, &output, [hidden_dim, heads, layers, n_cond_frames], &attn_type, seed)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn compare_tokens(model: &Path, input: &Path, tokens: &Path, tolerance: f64) -> Result<()> {
    let bytes = read_model(model)?;
    let m = VqVae::load(&Cpu, &bytes, "").map_err(|e| in_file(e, model))?;
    let file = std::fs::File::open(tokens).map_err(|e| Error::Io(format!("cannot open {}: {e}", tokens.display())))?;
    let theirs = tokens::npy::read(std::io::BufReader::new(file))?;
    let windows = model_windows(&m.config, &read_video(input)?)?;
    if theirs.shape[0] != windows.len() {
        bail!(Input, "{} holds {} clips of tokens; {} has {} model windows", tokens.display(), theirs.shape[0], input.display(), windows.len());
    }
    let (mut total, mut worst) = (0, 0.0f64);
    for (w, codes) in windows.iter().zip(theirs.clips()) {
        for d in m.disagreements(w, codes)? {
            total += 1;
            worst = worst.max(d.relative_gap);
            if d.relative_gap > tolerance {
                bail!(Input, "position {}: code {} here, {} in {}, and they are not a near-tie (relative distance gap {:e} > {tolerance:e})",
                    d.position, d.ours, d.theirs, tokens.display(), d.relative_gap);
            }
        }
    }
    if total == 0 {
        println!("identical: all {} tokens equal", theirs.codes.len());
    } else {
        println!("{total} of {} tokens differ, all float32 near-ties (largest relative distance gap {worst:.2e})", theirs.codes.len());
    }
    Ok(())
}

fn random_prior(vqvae: &Path, output: &Path, [hidden_dim, heads, layers, n_cond_frames]: [usize; 4], attn_type: &str, seed: u64) -> Result<()> {
    let vq_bytes = read_model(vqvae)?;
    let vq = VqVae::load(&Cpu, &vq_bytes, "").map_err(|e| in_file(e, vqvae))?;
    let meta = [
        ("hidden_dim", hidden_dim.to_string()),
        ("heads", heads.to_string()),
        ("layers", layers.to_string()),
        ("attn_type", attn_type.to_string()),
        ("n_cond_frames", n_cond_frames.to_string()),
    ];
    let config = videogpt::gpt::GptConfig::from_metadata(&meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), &vq.config)
        .map_err(|e| match e {
            Error::Weights(m) => Error::Input(m), // the hparams came from the command line
            other => other,
        })?;
    let bytes = videogpt::weights::bundle_prior(&videogpt::gpt::random_weights(&config, &vq.config, seed), &vq_bytes)?;
    videogpt::gpt::Gpt::load(&bytes, None)?; // what we write must load
    std::fs::write(output, bytes)?;
    eprintln!("wrote a random {layers}-layer {attn_type} GPT prior over {} to {}", vqvae.display(), output.display());
    Ok(())
}

/// Run `f` on the chosen backend. Generic code cannot be handed around as a value, so each
/// command is a generic function and this picks its instantiation.
fn with_backend(device: Device, f: impl Fn(&dyn AnyBackend) -> Result<()>) -> Result<()> {
    match device {
        Device::Cpu => f(&Cpu),
        Device::Gpu => {
            let gpu = pollster::block_on(Gpu::new())?;
            eprintln!("GPU: {}", gpu.describe());
            f(&gpu)
        }
    }
}

/// Object-safe front of the two backends for the commands below.
pub trait AnyBackend {
    /// A VQ-VAE file, or one under `prefix` inside a GPT file.
    fn load_prefixed(&self, bytes: &[u8], prefix: &str) -> Result<Box<dyn Model + '_>>;
    fn load(&self, bytes: &[u8]) -> Result<Box<dyn Model + '_>> {
        self.load_prefixed(bytes, "")
    }
}

pub trait Model {
    fn config(&self) -> &VqVaeConfig;
    fn encode(&self, clip: &videogpt::Volume) -> Result<Vec<u32>>;
    fn decode(&self, codes: &[u32], latent: [usize; 3]) -> Result<videogpt::Volume>;
}

struct Loaded<'b, B: Backend> {
    backend: &'b B,
    model: VqVae<B>,
}

impl<B: Backend> Model for Loaded<'_, B> {
    fn config(&self) -> &VqVaeConfig {
        &self.model.config
    }
    fn encode(&self, clip: &videogpt::Volume) -> Result<Vec<u32>> {
        pollster::block_on(self.model.encode_volume(self.backend, clip))
    }
    fn decode(&self, codes: &[u32], latent: [usize; 3]) -> Result<videogpt::Volume> {
        pollster::block_on(self.model.decode_codes(self.backend, codes, latent))
    }
}

impl<B: Backend> AnyBackend for B {
    fn load_prefixed(&self, bytes: &[u8], prefix: &str) -> Result<Box<dyn Model + '_>> {
        Ok(Box::new(Loaded { backend: self, model: VqVae::load(self, bytes, prefix)? }))
    }
}

fn read_model(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io(format!("cannot read model {}: {e}", path.display())))
}

/// Name the file an input error is about.
fn in_input(e: Error, path: &Path) -> Error {
    match e {
        Error::Input(m) => Error::Input(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Name the file a weights error is about.
fn in_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Weights(m) => Error::Weights(format!("{}: {m}", path.display())),
        other => other,
    }
}

fn load_model<'b>(b: &'b dyn AnyBackend, path: &Path) -> Result<Box<dyn Model + 'b>> {
    let bytes = read_model(path)?;
    b.load(&bytes).map_err(|e| in_file(e, path))
}

fn info(path: &Path) -> Result<()> {
    let bytes = read_model(path)?;
    let meta = videogpt::weights::WeightFile::parse(&bytes).map_err(|e| in_file(e, path))?.metadata().clone();
    println!("model            {}", path.display());
    if meta.get("format").is_some_and(|f| f == "videogpt-gpt") || meta.contains_key("hidden_dim") {
        // a GPT prior: its own hparams, then the VQ-VAE it holds under `vqvae.`
        let gpt = videogpt::gpt::Gpt::load(&bytes, None).map_err(|e| in_file(e, path))?;
        let c = &gpt.config;
        println!("kind             GPT prior over VQ-VAE tokens");
        println!("hidden_dim       {}", c.hidden_dim);
        println!("heads            {}", c.heads);
        println!("layers           {}", c.layers);
        println!("attn_type        {}", if c.attn_type == videogpt::gpt::AttnType::Sparse { "sparse" } else { "full" });
        println!("class_cond_dim   {}", c.class_cond_dim);
        println!("n_cond_frames    {}", c.n_cond_frames);
        println!("parameters       {} (without its VQ-VAE)", c.parameter_count());
        println!("its VQ-VAE (`vqvae.` keys):");
        let vq = VqVae::load(&Cpu, &bytes, "vqvae.").map_err(|e| in_file(e, path))?;
        print_vqvae(&vq.config);
    } else {
        let model = VqVae::load(&Cpu, &bytes, "").map_err(|e| in_file(e, path))?;
        println!("kind             VQ-VAE");
        print_vqvae(&model.config);
    }
    Ok(())
}

fn print_vqvae(c: &VqVaeConfig) {
    let [t, h, w] = c.latent_shape();
    println!("embedding_dim    {}", c.embedding_dim);
    println!("n_codes          {}", c.n_codes);
    println!("n_hiddens        {}", c.n_hiddens);
    println!("n_res_layers     {}", c.n_res_layers);
    println!("downsample       {},{},{}", c.downsample[0], c.downsample[1], c.downsample[2]);
    println!("resolution       {}", c.resolution);
    println!("sequence_length  {}", c.sequence_length);
    println!("parameters       {}", c.parameter_count());
    let (enc, dec) = c.flops();
    let frames = c.sequence_length as f64;
    println!("GFLOPs per frame {:.3} to encode, {:.3} to decode", enc / frames / 1e9, dec / frames / 1e9);
    println!("input clip       {}×{}×{} (T×H×W)", c.sequence_length, c.resolution, c.resolution);
    println!("latent shape     {t}×{h}×{w} = {} tokens of {:.0} bits", t * h * w, (c.n_codes as f64).log2().ceil());
}

/// Cut a clip into model windows and preprocess each (resize shorter side, centre crop).
fn model_windows(cfg: &VqVaeConfig, clip: &Video) -> Result<Vec<videogpt::Volume>> {
    let (ranges, dropped) = video::windows(clip.frames, cfg.sequence_length, cfg.downsample[0]);
    if ranges.is_empty() {
        bail!(Input, "the clip has {} frames; the model needs at least {} (its temporal downsample)", clip.frames, cfg.downsample[0]);
    }
    if dropped > 0 {
        eprintln!("note: {dropped} trailing frames do not fill a {}-frame window and are left out", cfg.sequence_length);
    }
    ranges.into_iter().map(|r| video::preprocess(&clip.slice(r.start, r.len()), cfg.resolution, None)).collect()
}

fn progress(label: &str, i: usize, n: usize, started: Instant) {
    eprintln!("{label} window {}/{n} ({:.1}s)", i + 1, started.elapsed().as_secs_f64());
}

fn is_vgt(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("vgt"))
}

fn encode(b: &dyn AnyBackend, model: &Path, input: &Path, output: &Path) -> Result<()> {
    if !is_vgt(output) {
        require_extension(output, "npy", "tokens")?;
    }
    let model_bytes = read_model(model)?;
    let m = b.load(&model_bytes).map_err(|e| in_file(e, model))?;
    let clip = read_video(input)?;
    let windows = model_windows(m.config(), &clip)?;
    let started = Instant::now();
    let mut codes = Vec::new();
    let mut latent = [0; 3];
    for (i, w) in windows.iter().enumerate() {
        codes.extend(m.encode(w)?);
        latent = m.config().check_clip(w.dims.t, w.dims.h, w.dims.w)?;
        progress("encoded", i, windows.len(), started);
    }
    let tokens = Tokens { shape: [windows.len(), latent[0], latent[1], latent[2]], codes };
    if is_vgt(output) {
        let file = videogpt::vgt::TokenFile {
            model_id: model.file_stem().map_or("model".into(), |s| s.to_string_lossy().into_owned()),
            model_hash: videogpt::vgt::model_hash(&model_bytes),
            n_codes: m.config().n_codes,
            tokens,
            fps: clip.fps.map(|f| f as f32),
        };
        let bytes = videogpt::vgt::write(&file)?;
        std::fs::write(output, &bytes)?;
        eprintln!("wrote {} tokens {:?} in {} bytes to {}", file.tokens.codes.len(), file.tokens.shape, bytes.len(), output.display());
        return Ok(());
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(output)?);
    tokens::npy::write(&mut f, &tokens)?;
    eprintln!("wrote {} tokens {:?} to {}", tokens.codes.len(), tokens.shape, output.display());
    Ok(())
}

fn decode(b: &dyn AnyBackend, model: &Path, input: &Path, output: &Path, fps: Option<f64>) -> Result<()> {
    let model_bytes = read_model(model)?;
    let m = b.load(&model_bytes).map_err(|e| in_file(e, model))?;
    let (tokens, file_fps) = if is_vgt(input) {
        let bytes = std::fs::read(input).map_err(|e| Error::Io(format!("cannot open {}: {e}", input.display())))?;
        let f = videogpt::vgt::read(&bytes).map_err(|e| in_input(e, input))?;
        f.check_model(&model_bytes, m.config().n_codes)?;
        (f.tokens, f.fps.map(f64::from))
    } else {
        let file = std::fs::File::open(input).map_err(|e| Error::Io(format!("cannot open {}: {e}", input.display())))?;
        (tokens::npy::read(std::io::BufReader::new(file))?, None)
    };
    let fps = fps.or(file_fps).unwrap_or(30.0);
    tokens::check_codes(&tokens, m.config().n_codes)?;
    let started = Instant::now();
    let n = tokens.shape[0];
    let mut clips = Vec::new();
    for (i, codes) in tokens.clips().enumerate() {
        clips.push(video::to_video(&m.decode(codes, tokens.latent())?)?);
        progress("decoded", i, n, started);
    }
    let mut out = Video::concat(&clips)?;
    out.fps = Some(fps);
    write_video(output, &out)?;
    eprintln!("wrote {} frames of {}×{} to {}", out.frames, out.width, out.height, output.display());
    Ok(())
}

fn reconstruct(b: &dyn AnyBackend, model: &Path, input: &Path, output: &Path, json: bool, device: Device) -> Result<()> {
    let m = load_model(b, model)?;
    let clip = read_video(input)?;
    let windows = model_windows(m.config(), &clip)?;
    let started = Instant::now();
    let (mut originals, mut recons) = (Vec::new(), Vec::new());
    let mut n_tokens = 0;
    for (i, w) in windows.iter().enumerate() {
        let codes = m.encode(w)?;
        n_tokens += codes.len();
        let latent = m.config().check_clip(w.dims.t, w.dims.h, w.dims.w)?;
        recons.push(video::to_video(&m.decode(&codes, latent)?)?);
        originals.push(video::to_video(w)?);
        progress("reconstructed", i, windows.len(), started);
    }
    let seconds = started.elapsed().as_secs_f64();
    let (original, mut recon) = (Video::concat(&originals)?, Video::concat(&recons)?);
    recon.fps = clip.fps;
    write_video(output, &recon)?;
    let psnr = metrics::psnr(&original, &recon)?;
    let ssim = metrics::ssim(&original, &recon)?;
    if json {
        let report = serde_json::json!({
            "input": input.display().to_string(),
            "output": output.display().to_string(),
            "device": format!("{device:?}").to_lowercase(),
            "frames": recon.frames,
            "size": [recon.height, recon.width],
            "tokens": n_tokens,
            "psnr": psnr,
            "ssim": ssim,
            "psnr_per_frame": metrics::psnr_per_frame(&original, &recon)?,
            "ssim_per_frame": metrics::ssim_per_frame(&original, &recon)?,
            "seconds": seconds,
        });
        println!("{report}");
    } else {
        println!("frames  {} at {}×{}", recon.frames, recon.width, recon.height);
        println!("tokens  {n_tokens}");
        println!("PSNR    {psnr:.2} dB");
        println!("SSIM    {ssim:.4}");
        println!("time    {seconds:.2} s");
    }
    Ok(())
}

/// The GPT and the VQ-VAE it models: from `--vqvae`, or from the GPT file's `vqvae.` keys.
fn load_prior<'b>(b: &'b dyn AnyBackend, model: &Path, vqvae: Option<&Path>) -> Result<(videogpt::gpt::Gpt, Box<dyn Model + 'b>)> {
    let gpt_bytes = read_model(model)?;
    let vq_bytes = vqvae.map(read_model).transpose()?;
    let gpt = videogpt::gpt::Gpt::load(&gpt_bytes, vq_bytes.as_deref()).map_err(|e| in_file(e, model))?;
    let vq = match (&vq_bytes, vqvae) {
        (Some(bytes), Some(path)) => b.load(bytes).map_err(|e| in_file(e, path))?,
        _ => b.load_prefixed(&gpt_bytes, "vqvae.").map_err(|e| in_file(e, model))?,
    };
    Ok((gpt, vq))
}

struct SampleJob<'a> {
    model: &'a Path,
    vqvae: Option<&'a Path>,
    output: &'a Path,
    tokens: Option<&'a Path>,
    n: usize,
    opts: &'a videogpt::gpt::SampleOptions,
    prefix: Option<&'a (PathBuf, usize)>,
    cond_frame: Option<&'a Path>,
}

/// Sample with the prior on `gpu` when given (the WGSL decoding path), else on the CPU; decode
/// with the VQ-VAE on `b`.
fn sample(b: &dyn AnyBackend, gpu: Option<&Gpu>, job: &SampleJob) -> Result<()> {
    if let Some(t) = job.tokens {
        require_extension(t, "npy", "tokens")?;
    }
    if job.n == 0 {
        bail!(Input, "--n must be at least 1");
    }
    let (gpt, vq) = load_prior(b, job.model, job.vqvae)?;
    let frames = frame_features(&gpt, job.cond_frame)?;
    let job_opts = videogpt::gpt::SampleOptions { frames, ..job.opts.clone() };
    let gpu_prior = gpu.map(|g| videogpt::gpu::GpuPrior::new(g, &gpt)).transpose()?;
    let [lt, lh, lw] = gpt.config.latent;
    let prefix_codes = match job.prefix {
        Some((clip, frames)) => {
            if *frames == 0 || *frames >= lt {
                bail!(Input, "--prefix-frames must be between 1 and {} (the GPT's latent frames)", lt - 1);
            }
            let windows = model_windows(vq.config(), &read_video(clip)?)?;
            let codes = vq.encode(&windows[0])?;
            if codes.len() != gpt.config.positions() {
                bail!(Input, "the prefix clip gives {} tokens, the GPT models {}", codes.len(), gpt.config.positions());
            }
            codes[..frames * lh * lw].to_vec()
        }
        None => Vec::new(),
    };
    let (n, total) = (job.n, gpt.config.positions() - prefix_codes.len());
    let started = Instant::now();
    let (mut all_codes, mut clips) = (Vec::new(), Vec::new());
    for s in 0..n {
        let opts = videogpt::gpt::SampleOptions { seed: job.opts.seed.wrapping_add(s as u64), ..job_opts.clone() };
        let mut shown = 0;
        let mut progress = |drawn: usize| {
            let done = drawn * 10 / total.max(1);
            if done > shown {
                shown = done;
                eprint!("\rsample {}/{n}: {}%  ({:.1}s)", s + 1, done * 10, started.elapsed().as_secs_f64());
            }
        };
        let grid = match &gpu_prior {
            Some(p) => pollster::block_on(p.sample(&opts, &prefix_codes, total.div_ceil(10), |i, _| progress(i - prefix_codes.len())))?,
            None => gpt.sample(&opts, &prefix_codes, |i, _| progress(i + 1 - prefix_codes.len()))?,
        };
        eprintln!();
        clips.push(video::to_video(&vq.decode(&grid, gpt.config.latent)?)?);
        all_codes.extend(grid);
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("{} tokens in {seconds:.1}s ({:.0} tokens/s with decoding)", n * total, (n * total) as f64 / seconds);
    if let Some(t) = job.tokens {
        let tokens = Tokens { shape: [n, lt, lh, lw], codes: all_codes };
        tokens::npy::write(&mut std::io::BufWriter::new(std::fs::File::create(t)?), &tokens)?;
    }
    let mut out = Video::concat(&clips)?;
    out.fps = Some(30.0);
    write_video(job.output, &out)?;
    eprintln!("wrote {n} sampled clips ({} frames) to {}", out.frames, job.output.display());
    Ok(())
}

/// The features of `--cond-frame` for a frame-conditioned GPT: its first n_cond_frames frames,
/// preprocessed to the VQ-VAE's resolution, through the ResNet.
fn frame_features(gpt: &videogpt::gpt::Gpt, cond_frame: Option<&Path>) -> Result<Option<videogpt::gpt::FrameFeatures>> {
    Ok(match (cond_frame, gpt.config.n_cond_frames) {
        (None, 0) => None,
        (Some(_), 0) => bail!(Input, "this GPT is not frame-conditioned; --cond-frame does not apply"),
        (None, n) => bail!(Input, "this GPT is conditioned on {n} frame(s): give them with --cond-frame IMAGE_OR_CLIP"),
        (Some(path), n) => {
            let clip = read_video(path)?;
            if clip.frames < n {
                bail!(Input, "{} has {} frame(s); the GPT is conditioned on {n}", path.display(), clip.frames);
            }
            let x = video::preprocess(&clip, gpt.config.resolution, Some(n))?;
            Some(gpt.frame_features(&x)?)
        }
    })
}

fn score(model: &Path, vqvae: Option<&Path>, tokens_path: &Path, class: Option<usize>, cond_frame: Option<&Path>) -> Result<()> {
    let gpt_bytes = read_model(model)?;
    let vq_bytes = vqvae.map(read_model).transpose()?;
    let gpt = videogpt::gpt::Gpt::load(&gpt_bytes, vq_bytes.as_deref())
        .map_err(|e| in_file(e, model))?;
    let file = std::fs::File::open(tokens_path).map_err(|e| Error::Io(format!("cannot open {}: {e}", tokens_path.display())))?;
    let tokens = tokens::npy::read(std::io::BufReader::new(file))?;
    if tokens.latent() != gpt.config.latent {
        bail!(Input, "tokens of shape {:?} per clip; this GPT models {:?}", tokens.latent(), gpt.config.latent);
    }
    let frames = frame_features(&gpt, cond_frame)?;
    for (i, clip) in tokens.clips().enumerate() {
        println!("clip {i}: {:.6} bits per token", gpt.bits_per_token_with(clip, class, frames.as_ref())?);
    }
    Ok(())
}

fn require_extension(path: &Path, ext: &str, what: &str) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()).map(|e| e.eq_ignore_ascii_case(ext)) != Some(true) {
        bail!(Input, "{what} are written as .{ext}; got {}", path.display());
    }
    Ok(())
}
