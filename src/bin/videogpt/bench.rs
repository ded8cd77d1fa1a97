//! `videogpt bench`: encode+decode time of a 16×64×64 clip, CPU and GPU, against the PyTorch
//! reference on the CPU in the same run. Prints a markdown table (docs/performance.md keeps one).

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use videogpt::backend::Backend;
use videogpt::video::{io::read_video, preprocess, Video};
use videogpt::{Cpu, Gpu, Result, Volume, VqVae, VqVaeConfig};

#[derive(clap::Args)]
pub struct Args {
    /// Timed runs per measurement (after one warm-up run); the median is reported.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..))]
    repeat: u16,
    /// Only the small model.
    #[arg(long)]
    quick: bool,
    /// Leave out the GPU (wgpu) rows.
    #[arg(long)]
    no_gpu: bool,
    /// Leave out the PyTorch reference rows.
    #[arg(long)]
    no_torch: bool,
    /// Clip to use (default: the bundled carphone fixture, looped to 16 frames).
    #[arg(long)]
    input: Option<PathBuf>,
    /// Benchmark the GPT prior's sampling instead (tokens per second with the KV cache).
    #[arg(long)]
    prior: bool,
    /// Count what the GPU path asks of the device (dispatches, buffers, bind groups, submits,
    /// readbacks) per reconstructed chunk and per sampled token, with the shipped models.
    #[arg(long)]
    gpu_stats: bool,
}

/// Where the bundled clip, the shipped models and the reference scripts are: this checkout, or
/// `VIDEOGPT_ROOT` (a copy of `tests/fixtures/` and `models/` beside a copied binary, as
/// `scripts/gpu-check.sh --pack` makes for a GPU machine without cargo).
pub fn data_root() -> PathBuf {
    std::env::var_os("VIDEOGPT_ROOT").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// One line of counts, divided by `per` (chunks or tokens).
fn stats_row(what: &str, s: &videogpt::gpu::GpuStats, per: f64) {
    println!(
        "| {what} | {:.1} | {:.1} | {:.2} | {:.1} | {:.2} | {:.2} | {:.1} | {:.1} | {} |",
        s.dispatches as f64 / per,
        s.buffers_created as f64 / per,
        s.bytes_created as f64 / per / 1e6,
        s.bind_groups as f64 / per,
        s.submits as f64 / per,
        s.map_waits as f64 / per,
        s.readback_bytes as f64 / per / 1e3,
        s.weight_bytes as f64 / per / 1e3,
        if s.flops_useful > 0 { format!("{:.2}", s.flops_executed as f64 / s.flops_useful as f64) } else { "—".into() }
    );
}

/// The GPU path's counters (videogpt::gpu::GpuStats) for the work users run: a reconstructed
/// chunk of natural-64 (4 and 16 frames, 64² and 128²) and a sampled token of the shipped prior
/// and of a VideoGPT-width (576) one. Steady state: each is measured on its second run.
fn run_gpu_stats(quick: bool) -> Result<()> {
    use videogpt::workflow::Tokenizer;
    let root = data_root();
    let g = pollster::block_on(Gpu::new())?;
    println!("gpu: {}", g.describe());
    println!();
    println!(
        "| per | dispatches | buffers created | MB created | bind groups | submits | map waits | KB read back | KB of weights read | executed / useful FLOPs |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let clip = read_video(&root.join("tests/fixtures/carphone_8f.npy"))?;
    let clip = Video::concat(&[clip.clone(), clip])?;
    let model = std::fs::read(root.join("models/natural-64.safetensors"))?;
    for (frames, res) in [(4, 64), (16, 64), (4, 128)] {
        eprintln!("gpu-stats: a {frames}×{res}×{res} chunk of natural-64, twice…");
        let t = Tokenizer::load(&g, &model, "")?.with_resolution(Some(res))?;
        let part = clip.slice(0, frames);
        let mut stats = Default::default();
        for _ in 0..2 {
            g.reset_stats();
            let x = t.preprocess(&g, &part, 0..frames)?;
            pollster::block_on(t.reconstruct(&g, &x, &|| 0.0))?;
            stats = g.stats();
        }
        stats_row(&format!("{frames}×{res}×{res} chunk, natural-64 (RGB bytes in)"), &stats, 1.0);
    }
    let prior_bytes = std::fs::read(root.join("models/mmnist-prior.safetensors"))?;
    let mmnist = videogpt::gpt::Gpt::load(&prior_bytes, None)?;
    // a 1×8×8 grid: what a token reads of the weights does not depend on the grid's size, and
    // 128 tokens instead of 2,048 keep this to minutes on a software adapter
    let vq = VqVaeConfig { n_codes: 1024, resolution: 32, sequence_length: 4, ..VqVaeConfig::default() };
    let wide_config = videogpt::gpt::GptConfig::videogpt_default(&vq);
    let (wide_f32, wide_vq) = (videogpt::gpt::random_weights(&wide_config, &vq, 1), videogpt::vqvae::random_weights(&vq, 1));
    let wide = videogpt::gpt::Gpt::load(&wide_f32, Some(&wide_vq))?;
    // as the shipped priors are stored: f16 weights, which the GEMVs read at half the bytes
    let wide_f16 = videogpt::gpt::Gpt::load(&videogpt::weights::to_f16(&wide_f32)?, Some(&wide_vq))?;
    let priors = [
        ("token, mmnist-prior (144 wide, 4 layers, f16)", &mmnist),
        ("token, 576-wide prior (8 layers, f32; 1×8×8 grid)", &wide),
        ("token, 576-wide prior (8 layers, f16; 1×8×8 grid)", &wide_f16),
    ];
    // --quick: the shipped prior only (the 576-wide one takes minutes on a software adapter)
    for (name, gpt) in &priors[..if quick { 1 } else { 3 }] {
        eprintln!("gpu-stats: sampling with the {name}…");
        let prior = videogpt::gpu::GpuPrior::new(&g, gpt)?;
        let n = gpt.config.positions() as f64;
        let mut stats = Default::default();
        for _ in 0..2 {
            g.reset_stats();
            pollster::block_on(prior.sample(&Default::default(), &[], 64, |_, _| {}))?;
            stats = g.stats();
        }
        stats_row(&format!("{name}, progress every 64"), &stats, n);
    }
    if g.has_timestamps() {
        // per dispatch of one steady-state chunk: GPU time from the pass's timestamps
        for res in [64, 128] {
            eprintln!("gpu-stats: timing every dispatch of a 4×{res}×{res} chunk…");
            let t = Tokenizer::load(&g, &model, "")?.with_resolution(Some(res))?;
            let part = clip.slice(0, 4);
            let x = t.preprocess(&g, &part, 0..4)?;
            pollster::block_on(t.reconstruct(&g, &x, &|| 0.0))?;
            g.start_profile()?;
            let x = t.preprocess(&g, &part, 0..4)?;
            pollster::block_on(t.reconstruct(&g, &x, &|| 0.0))?;
            let timings = pollster::block_on(g.finish_profile())?;
            println!();
            println!("4×{res}×{res} chunk, per dispatch (GPU timestamps):");
            println!();
            // GFLOP/s against the adapter's FP32 peak, where we know it (gpu_info.rs)
            let peak = crate::gpu_info::peak_gflops(&g);
            let of_peak = |gflops: f64| peak.map_or("—".into(), |(p, _)| format!("{:.1} %", 100.0 * gflops / p));
            println!("| # | kernel | MFLOP | µs | GFLOP/s | of FP32 peak |");
            println!("|---:|---|---:|---:|---:|---:|");
            for (i, t) in timings.iter().enumerate() {
                let (gflops, share) = if t.flops > 0 {
                    let r = t.flops as f64 / t.nanoseconds;
                    (format!("{r:.1}"), of_peak(r))
                } else {
                    ("—".into(), "—".into())
                };
                println!("| {i} | {} | {:.1} | {:.0} | {gflops} | {share} |", t.kernel, t.flops as f64 / 1e6, t.nanoseconds / 1e3);
            }
            let (flops, ns): (u64, f64) = (timings.iter().map(|t| t.flops).sum(), timings.iter().map(|t| t.nanoseconds).sum());
            println!("| | all | {:.1} | {:.0} | {:.1} | {} |", flops as f64 / 1e6, ns / 1e3, flops as f64 / ns, of_peak(flops as f64 / ns));
        }
    } else {
        println!();
        println!("(this adapter has no timestamp queries: no per-layer GFLOP/s)");
    }
    Ok(())
}

fn models(quick: bool) -> Vec<(&'static str, VqVaeConfig)> {
    let videogpt = VqVaeConfig::default(); // 240 hiddens, 4 res layers, 2048×256 codebook
    let small = VqVaeConfig { n_hiddens: 64, n_res_layers: 2, embedding_dim: 64, n_codes: 512, ..VqVaeConfig::default() };
    let mut m = vec![("small (64 hiddens, 2 res layers)", small)];
    if !quick {
        m.push(("VideoGPT width (240 hiddens, 4 res layers)", videogpt));
    }
    m
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// (encode seconds, decode seconds), medians.
fn time<B: Backend>(b: &B, model: &VqVae<B>, clip: &Volume, repeat: u16) -> Result<(f64, f64)> {
    let (mut enc, mut dec) = (Vec::new(), Vec::new());
    for i in 0..=repeat {
        let t0 = Instant::now();
        let codes = pollster::block_on(model.encode_volume(b, clip))?;
        let t1 = Instant::now();
        let latent = model.config.check_clip(clip.dims.t, clip.dims.h, clip.dims.w)?;
        pollster::block_on(model.decode_codes(b, &codes, latent))?;
        if i > 0 {
            enc.push((t1 - t0).as_secs_f64());
            dec.push(t1.elapsed().as_secs_f64());
        }
    }
    Ok((median(enc), median(dec)))
}

fn torch_reference(cfg: &VqVaeConfig, repeat: u16) -> std::result::Result<(f64, f64), String> {
    let script = data_root().join("train/bench_reference.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--n_hiddens", &cfg.n_hiddens.to_string(), "--n_res_layers", &cfg.n_res_layers.to_string()])
        .args(["--embedding_dim", &cfg.embedding_dim.to_string(), "--n_codes", &cfg.n_codes.to_string()])
        .args(["--repeat", &repeat.to_string()])
        .output()
        .map_err(|e| format!("python3 not runnable ({e})"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    Ok((v["encode_s"].as_f64().unwrap_or(f64::NAN), v["decode_s"].as_f64().unwrap_or(f64::NAN)))
}

fn row(model: &str, engine: &str, (e, d): (f64, f64), baseline: Option<f64>) {
    let ratio = baseline.map_or("".to_string(), |b| format!("{:.2}×", b / (e + d)));
    println!("| {model} | {engine} | {:.1} | {:.1} | {:.1} | {ratio} |", e * 1e3, d * 1e3, (e + d) * 1e3);
}

/// PyTorch reference sampler with a KV cache, tokens per second.
fn torch_prior(latent: [usize; 3], c: &videogpt::gpt::GptConfig) -> std::result::Result<f64, String> {
    let script = data_root().join("train/bench_gpt_reference.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--latent", &format!("{},{},{}", latent[0], latent[1], latent[2])])
        .args(["--hidden_dim", &c.hidden_dim.to_string(), "--heads", &c.heads.to_string(), "--layers", &c.layers.to_string()])
        .args(["--attn_type", "sparse", "--n_codes", &c.n_codes.to_string()])
        .output()
        .map_err(|e| format!("python3 not runnable ({e})"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("failed").to_string());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    v["tokens_per_s"].as_f64().ok_or_else(|| "no tokens_per_s".into())
}

/// Sampling speed of a VideoGPT-default prior (576 hidden, 4 heads, 8 layers, sparse attention,
/// 1024 codes) over 4×16×16 and 4×32×32 grids.
fn run_prior(args: &Args) -> Result<()> {
    println!("GPT prior: 576 hidden, 4 heads, 8 layers, sparse attention, 1024 codes; random f16 weights; one sample, KV cache");
    println!("cpu threads: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let gpu = if args.no_gpu { None } else { Some(pollster::block_on(Gpu::new())?) };
    if let Some(g) = &gpu {
        println!("gpu: {}", g.describe());
    }
    println!();
    println!("| latent grid | engine | tokens | seconds | tokens/s | speed vs PyTorch CPU |");
    println!("|---|---|---:|---:|---:|---:|");
    let grids: &[[usize; 3]] = if args.quick { &[[4, 16, 16]] } else { &[[4, 16, 16], [4, 32, 32]] };
    for &latent in grids {
        let vq = VqVaeConfig { n_codes: 1024, resolution: latent[1] * 4, sequence_length: latent[0] * 4, ..VqVaeConfig::default() };
        let config = videogpt::gpt::GptConfig::videogpt_default(&vq);
        let torch = if args.no_torch {
            None
        } else {
            match torch_prior(latent, &config) {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("PyTorch reference skipped: {e}");
                    None
                }
            }
        };
        let grid = format!("{}×{}×{}", latent[0], latent[1], latent[2]);
        let n = latent.iter().product::<usize>();
        if let Some(t) = torch {
            println!("| {grid} | PyTorch reference, CPU | {n} | {:.1} | {t:.0} | 1.00× |", n as f64 / t);
        }
        let vq_bytes = videogpt::vqvae::random_weights(&VqVaeConfig { n_hiddens: 16, n_res_layers: 0, ..vq.clone() }, 1);
        // f16, as the shipped priors are stored
        let gpt = videogpt::gpt::Gpt::load(&videogpt::weights::to_f16(&videogpt::gpt::random_weights(&config, &vq, 2))?, Some(&vq_bytes))?;
        let start = Instant::now();
        gpt.sample(&videogpt::gpt::SampleOptions::default(), &[], |_, _| {})?;
        let s = start.elapsed().as_secs_f64();
        let ratio = torch.map_or(String::new(), |t| format!("{:.2}×", n as f64 / s / t));
        println!("| {grid} | videogpt CPU | {n} | {s:.1} | {:.0} | {ratio} |", n as f64 / s);
        if let Some(g) = &gpu {
            let prior = videogpt::gpu::GpuPrior::new(g, &gpt)?;
            let start = Instant::now();
            pollster::block_on(prior.sample(&videogpt::gpt::SampleOptions::default(), &[], 0, |_, _| {}))?;
            let s = start.elapsed().as_secs_f64();
            let ratio = torch.map_or(String::new(), |t| format!("{:.2}×", n as f64 / s / t));
            println!("| {grid} | videogpt wgpu | {n} | {s:.1} | {:.0} | {ratio} |", n as f64 / s);
        }
    }
    Ok(())
}

pub fn run(args: Args) -> Result<()> {
    if args.gpu_stats {
        return run_gpu_stats(args.quick);
    }
    if args.prior {
        return run_prior(&args);
    }
    let source = match &args.input {
        Some(p) => read_video(p)?,
        None => {
            let clip = read_video(&data_root().join("tests/fixtures/carphone_8f.npy"))?;
            Video::concat(&[clip.clone(), clip])?
        }
    };
    let clip = preprocess(&source, 64, Some(16), videogpt::video::Resize::VideoGpt)?;
    let gpu = if args.no_gpu { None } else { Some(pollster::block_on(Gpu::new())?) };
    println!("clip: {}×{}×{} (T×H×W), random weights, median of {} runs after a warm-up", clip.dims.t, clip.dims.h, clip.dims.w, args.repeat);
    println!("cpu threads: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Some(g) = &gpu {
        println!("gpu: {}", g.describe());
    }
    println!();
    println!("| model | engine | encode ms | decode ms | total ms | speed vs PyTorch CPU |");
    println!("|---|---|---:|---:|---:|---:|");
    for (name, cfg) in models(args.quick) {
        let bytes = videogpt::vqvae::random_weights(&cfg, 1);
        let torch = if args.no_torch {
            None
        } else {
            match torch_reference(&cfg, args.repeat) {
                Ok(t) => Some(t),
                Err(e) => {
                    eprintln!("PyTorch reference skipped: {e}");
                    None
                }
            }
        };
        let baseline = torch.map(|(e, d)| e + d);
        if let Some(t) = torch {
            row(name, "PyTorch reference, CPU", t, baseline);
        }
        let cpu_model = VqVae::load(&Cpu, &bytes, "")?;
        row(name, "videogpt CPU", time(&Cpu, &cpu_model, &clip, args.repeat)?, baseline);
        if let Some(g) = &gpu {
            let model = VqVae::load(g, &bytes, "")?;
            row(name, "videogpt wgpu", time(g, &model, &clip, args.repeat)?, baseline);
        }
    }
    Ok(())
}
