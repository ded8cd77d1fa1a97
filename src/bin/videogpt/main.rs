//! `videogpt`: the native command line over the same engine the web page runs. Argument parsing
//! lives here; the commands (`commands.rs`) read and write files around the engine's shared
//! workflows (`videogpt::workflow`) on the engine handle (`videogpt::engine`); `bench.rs` and `serve.rs` are the benchmark and the demo
//! server; `tools.rs` writes random models for tests.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use videogpt::engine::{Device, InputOptions};

mod bench;
mod commands;
mod dataset;
mod files;
mod gpu_info;
mod models;
mod prior;
mod serve;
mod tools;

#[derive(Parser)]
#[command(
    name = "videogpt",
    version,
    about = "VideoGPT (VQ-VAE video tokenizer and GPT prior) on the CPU and on wgpu/WebGPU: encode, decode, reconstruct, sample, score, serve the demo"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What every model-running command takes.
#[derive(clap::Args)]
pub struct Job {
    /// VQ-VAE weights: .safetensors with VideoGPT state_dict keys and hparams in its metadata, or
    /// an original VideoGPT checkpoint (.ckpt/.pt), converted in memory.
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long)]
    pub input: PathBuf,
    #[arg(long)]
    pub output: PathBuf,
    /// cpu: the plain-Rust path; gpu: the WGSL kernels on the first wgpu adapter.
    #[arg(long, value_enum, default_value = "cpu")]
    pub device: Device,
    #[command(flatten)]
    pub input_options: InputOptions,
}

#[derive(Subcommand)]
enum Command {
    /// Print a VQ-VAE's or a GPT prior's hparams, parameter count and latent shape, or what a
    /// .vgt token file's header says (its model, grid, and the prior a compressed one needs).
    Info { model: PathBuf },
    /// An original VideoGPT checkpoint (PyTorch Lightning .ckpt or torch.save .pt, zip or legacy
    /// format) → .safetensors. The pickle is read, never executed: a checkpoint that would call
    /// anything but torch's tensor rebuilders is refused. Every --model also takes .ckpt directly.
    Convert {
        #[arg(long)]
        input: PathBuf,
        #[arg(long)]
        output: PathBuf,
        /// Store f32 tensors as f16 (half the size; the engine computes in f32).
        #[arg(long)]
        f16: bool,
    },
    /// Video (.npy uint8 T×H×W×3, .y4m, or anything ffmpeg reads) → tokens: .npy (int32) or
    /// .vgt (bit-packed, names the model; docs/vgt-format.md). With a folder (every video under
    /// it) or a .txt list of paths as --input: every clip, into the folder --output (one .npy of
    /// tokens per clip and a manifest), resuming where an earlier run stopped.
    Encode {
        #[command(flatten)]
        job: Job,
        /// With a folder or list as --input: this run's share of the clips, i/n (0 ≤ i < n; clip
        /// k of the sorted list goes to shard k mod n), so n machines or array jobs split a dataset.
        #[arg(long)]
        shard: Option<String>,
        /// A GPT prior over --model's tokens: the .vgt output is coded under it (version 2,
        /// about the prior's bits per token; decoding needs the same prior).
        #[arg(long)]
        prior: Option<PathBuf>,
    },
    /// Tokens (.npy, T'×H'×W' or B×T'×H'×W', or .vgt) → video (.npy, .y4m, or anything ffmpeg
    /// writes).
    Decode {
        #[command(flatten)]
        job: Job,
        /// Frame rate written into the output container (default: the .vgt file's, else 30).
        #[arg(long)]
        fps: Option<f64>,
        /// The GPT prior a compressed (version 2) .vgt input is coded under.
        #[arg(long)]
        prior: Option<PathBuf>,
    },
    /// Encode then decode a video; prints PSNR and SSIM against the model-sized input.
    Reconstruct {
        #[command(flatten)]
        job: Job,
        /// Print the metrics as JSON.
        #[arg(long)]
        json: bool,
        /// Stream: read a y4m stream (`--input -` for stdin, e.g. piped from ffmpeg) and write the
        /// reconstruction as y4m (`--output -` for stdout) chunk by chunk as frames arrive, each
        /// chunk (the temporal stride) with the one before it as context, as the page's live mode
        /// does; per-chunk PSNR and time go to stderr.
        #[arg(long)]
        stream: bool,
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
        /// The frame of --prefix its window starts at (a film of any length: only that window is decoded).
        #[arg(long, default_value_t = 0)]
        start: usize,
        /// Conditioning frames of a frame-conditioned GPT: the first n_cond_frames frames of this
        /// image or clip, preprocessed as the VQ-VAE's input.
        #[arg(long)]
        cond_frame: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "cpu")]
        device: Device,
        #[command(flatten)]
        input_options: InputOptions,
    },
    /// Negative log-likelihood of token grids under a GPT prior, teacher-forced, in bits per token.
    Score {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        vqvae: Option<PathBuf>,
        /// Tokens (.npy, T'×H'×W' or B×T'×H'×W', or .vgt).
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
    /// Describe the GPU adapter wgpu picks here: name, backend, driver, limits, features, and its
    /// FP32 peak where known (the first lines of scripts/gpu-check.sh's report).
    Gpu,
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
        /// How the tokens' maker resized the clip.
        #[command(flatten)]
        input_options: InputOptions,
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

/// Mesa's Vulkan loader (lavapipe, and drivers on headless machines) prints "error:
/// XDG_RUNTIME_DIR is invalid or not set in the environment." when the variable is missing, which
/// a user reads as our error; compute needs no display, so a session without one gets a private
/// folder for it.
fn quiet_vulkan_loader() {
    #[cfg(target_os = "linux")]
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        use std::os::unix::fs::DirBuilderExt;
        let dir = std::env::temp_dir().join("videogpt-runtime");
        let _ = std::fs::DirBuilder::new().mode(0o700).create(&dir);
        if dir.is_dir() {
            // single-threaded here: nothing else reads the environment yet
            std::env::set_var("XDG_RUNTIME_DIR", &dir);
        }
    }
}

fn main() -> ExitCode {
    use commands::*;
    use prior::*;
    quiet_vulkan_loader();
    let cli = Cli::parse();
    // a misspelt or unsupported kernel must not silently fall back to the default one
    if let Err(e) = videogpt::cpu::Microkernel::from_env() {
        eprintln!("error: {e}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Info { model } => models::info(&model),
        Command::Convert { input, output, f16 } => models::convert(&input, &output, f16),
        // the shard as the user wrote it (`i/n`), checked before any model or device is opened,
        // so a bad one is an `error:` line like any other (clap's own errors exit with 2)
        Command::Encode { job, shard, prior } => shard
            .as_deref()
            .map(str::parse::<dataset::Shard>)
            .transpose()
            .map_err(|e| videogpt::Error::Input(format!("--shard {e}")))
            .and_then(|shard| run_job(job, Action::Encode { shard, prior })),
        Command::Decode { job, fps, prior } => run_job(job, Action::Decode { fps, prior }),
        Command::Reconstruct { job, json, stream } => run_job(job, Action::Reconstruct { json, stream }),
        Command::Sample {
            model,
            vqvae,
            output,
            tokens,
            n,
            seed,
            temperature,
            top_k,
            class,
            prefix,
            prefix_frames,
            start,
            cond_frame,
            device,
            input_options,
        } => {
            let opts = videogpt::gpt::SampleOptions { temperature, top_k, seed, class, frames: None };
            let prefix = prefix.map(|p| (p, prefix_frames));
            let job = SampleJob {
                model: &model,
                vqvae: vqvae.as_deref(),
                output: &output,
                tokens: tokens.as_deref(),
                n,
                opts: &opts,
                prefix: prefix.as_ref(),
                start,
                cond_frame: cond_frame.as_deref(),
                input: input_options,
            };
            sample(device, &job)
        }
        Command::Score { model, vqvae, tokens, class, cond_frame } => score(&model, vqvae.as_deref(), &tokens, class, cond_frame.as_deref()),
        Command::Bench(args) => bench::run(args),
        Command::Gpu => gpu_info::run(),
        Command::Serve(args) => serve::run(args),
        Command::RandomModel { output, n_hiddens, n_res_layers, embedding_dim, n_codes, downsample, resolution, sequence_length, seed, calibrate } => {
            tools::random_model(&output, [n_hiddens, n_res_layers, embedding_dim, n_codes, resolution, sequence_length], downsample, seed, calibrate.as_deref())
        }
        Command::CompareTokens { model, input, tokens, tolerance, input_options } => compare_tokens(&model, &input, &tokens, tolerance, input_options),
        Command::RandomPrior { vqvae, output, hidden_dim, heads, layers, attn_type, n_cond_frames, seed } => {
            tools::random_prior(&vqvae, &output, [hidden_dim, heads, layers, n_cond_frames], &attn_type, seed)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // one line, whatever a tool (ffmpeg) said over several
            let text = e.to_string();
            let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            eprintln!("error: {}", lines.join("; "));
            ExitCode::FAILURE
        }
    }
}
