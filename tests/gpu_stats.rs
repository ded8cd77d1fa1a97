//! The GPU runtime's counters (`GpuStats`), on lavapipe: they count what the code asks of the
//! device, checked against what the model's architecture implies, and they hold today's budgets,
//! so that a change that adds dispatches, allocations or readbacks to a chunk or a sampled token
//! fails here. docs/performance.md keeps the table (`videogpt bench --gpu-stats --quick`, "GPU counters per
//! chunk and per token").

mod common;

use common::{fixture, read, root};
use videogpt::backend::Backend;
use videogpt::gpu::{GpuPrior, GpuStats};
use videogpt::video::io::read_video;
use videogpt::video::{input_to_video, to_video};
use videogpt::workflow::Tokenizer;
use videogpt::Gpu;

/// natural-64's file, its tokenizer on `g`, and a 4-frame chunk (one latent frame) of carphone.
fn natural64_chunk(g: &Gpu) -> (Vec<u8>, Tokenizer<Gpu>, videogpt::video::Video) {
    let model = std::fs::read(root().join("models/natural-64.safetensors")).unwrap();
    let t = Tokenizer::load(g, &model, "").unwrap();
    (model, t, read_video(&fixture("carphone_8f.npy")).unwrap().slice(0, 4))
}

fn gpu() -> Gpu {
    pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI: apt install mesa-vulkan-drivers)")
}

/// Budgets per steady-state chunk or token (docs/performance.md has today's counts). A chunk: at
/// most 28 dispatches, no buffer created (the pool and the uniform cache serve every one after
/// the first), one readback, and at most 10 % of the convolutions' multiply-adds spent on idle
/// tile rows or columns.
const CHUNK_DISPATCHES: u64 = 28;
const CHUNK_MAP_WAITS: u64 = 1;
const CHUNK_FLOP_OVERHEAD: f64 = 1.1;
/// A sampled token of mmnist-prior (4 layers): 5 dispatches a layer and 3 more (embed, fc_out, draw).
const TOKEN_DISPATCHES_MMNIST: f64 = 23.0;

#[test]
fn a_reconstructed_chunk_counts_what_the_architecture_implies() {
    let g = gpu();
    let (_, t, clip) = natural64_chunk(&g);
    let c = t.config().clone();
    let mut s = GpuStats::default();
    for _ in 0..2 {
        g.reset_stats();
        let x = t.preprocess(&g, &clip, 0..4).unwrap();
        pollster::block_on(t.reconstruct(&g, &x, &|| 0.0)).unwrap();
        s = g.stats();
    }
    eprintln!("4×64×64 chunk: {s:?}");
    // every dispatch is one pass with one bind group, and is attributed to a kernel
    assert_eq!((s.passes, s.bind_groups), (s.dispatches, s.dispatches));
    assert_eq!(s.by_kernel.values().sum::<u64>(), s.dispatches);
    // the convolutions of VideoGPT's VQ-VAE (spec §1), from the hparams alone: the encoder's
    // strided convs and conv_last; in each residual block (encoder and decoder) the 3×3×3 and
    // 1×1×1 convs (the BatchNorm + ReLU before them fused into their input) and the attention's
    // fused q/k/v and output projections; pre_vq_conv (post_vq_conv is folded into the decoder's
    // lookup table, which the codebook search writes); the decoder's transposed convs, the last
    // one (3 channels) in the few-channel kernel; one attention dispatch a block for its axes
    let strided = c.downsample.iter().map(|d| d.trailing_zeros()).max().unwrap() as u64;
    let blocks = 2 * c.n_res_layers as u64;
    assert_eq!(s.by_kernel.get("conv3d").copied(), Some(strided + 1 + 4 * blocks + 1), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("conv_transpose3d").copied(), Some(strided - 1), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("conv_transpose3d_few"), Some(&1));
    assert_eq!(s.by_kernel.get("axial_attention").copied(), Some(blocks), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("codebook_argmin"), Some(&1));
    assert_eq!(s.by_kernel.get("affine_relu"), None, "BatchNorm runs fused into the conv after it");
    // one readback: the codes, then the input and output clips as RGBA bytes
    assert_eq!(s.map_waits, CHUNK_MAP_WAITS);
    assert_eq!(s.readback_bytes, (16 * 16 + 2 * 4 * 64 * 64) * 4);
    assert_eq!(s.buffers_created, 0, "a steady-state chunk creates no buffer: {s:?}");
    assert!(s.dispatches <= CHUNK_DISPATCHES, "over budget: {s:?}");
    let overhead = s.flops_executed as f64 / s.flops_useful as f64;
    assert!(s.flops_useful > 0 && overhead <= CHUNK_FLOP_OVERHEAD, "{overhead:.3} executed per useful FLOP: {s:?}");
}

#[test]
fn a_chunk_given_as_images_creates_nothing_either() {
    // the page's path: frames as images go through a texture (RGBA bytes natively), reused
    let g = gpu();
    let (_, t, clip) = natural64_chunk(&g);
    let rgba: Vec<u8> = clip.rgb.chunks_exact(3).flat_map(|p| [p[0], p[1], p[2], 255]).collect();
    let mut s = GpuStats::default();
    for _ in 0..2 {
        g.reset_stats();
        let frames = g.upload_rgba_frames(&rgba, [clip.frames, clip.height, clip.width]).unwrap();
        let x = g.preprocess_frames(&frames, 64, Default::default()).unwrap();
        pollster::block_on(t.reconstruct(&g, &x, &|| 0.0)).unwrap();
        s = g.stats();
    }
    assert_eq!((s.buffers_created, s.map_waits), (0, 1), "{s:?}");
    assert_eq!(s.dispatches, CHUNK_DISPATCHES + 1, "one rgba_to_rgb pass more: {s:?}");
}

#[test]
fn a_chunk_comes_back_as_the_bytes_of_its_floats() {
    // the pixels the preprocessing and last-layer kernels write (and the to_rgba8 pass that packs
    // clips uploaded as floats) are exactly what video.rs makes of the floats they stand for: the
    // input's rounded (video::input_to_video), the output's truncated (video::to_video)
    let g = gpu();
    let (model, t, clip) = natural64_chunk(&g);
    let x = t.preprocess(&g, &clip, 0..4).unwrap();
    let r = pollster::block_on(t.reconstruct(&g, &x, &|| 0.0)).unwrap();
    let as_video = |v: &videogpt::backend::Tensor<videogpt::Gpu>| to_video(&pollster::block_on(g.read_volume(v)).unwrap()).unwrap();
    let input = input_to_video(&pollster::block_on(g.read_volume(&x)).unwrap()).unwrap();
    assert!(r.input.rgb == input.rgb, "the input's bytes are not input_to_video of its floats");
    let vq = videogpt::vqvae::VqVae::load(&g, &model, "").unwrap();
    let y = vq.decode(&g, &g.upload_codes(&r.tokens, r.latent).unwrap()).unwrap();
    let decoded = as_video(&y);
    assert_eq!(r.output.rgb, decoded.rgb);
    // the same clips uploaded as floats have no pixels of their own: to_rgba8 packs them
    let (x2, y2) =
        (g.upload_volume(&pollster::block_on(g.read_volume(&x)).unwrap()).unwrap(), g.upload_volume(&pollster::block_on(g.read_volume(&y)).unwrap()).unwrap());
    let codes = g.upload_codes(&r.tokens, r.latent).unwrap();
    g.reset_stats();
    let (tokens, input, output) = pollster::block_on(g.read_reconstruction(&codes, &x2, &y2)).unwrap();
    assert_eq!(g.stats().by_kernel.get("to_rgba8"), Some(&1));
    assert!((tokens, input.rgb, output.rgb) == (r.tokens, r.input.rgb, decoded.rgb), "to_rgba8 packed other bytes");
}

#[test]
fn a_sampled_token_stays_within_its_budget() {
    let g = gpu();
    let gpt = videogpt::gpt::Gpt::load(&read("../../models/mmnist-prior.safetensors"), None).unwrap();
    let prior = GpuPrior::new(&g, &gpt).unwrap();
    let n = gpt.config.positions() as f64;
    pollster::block_on(prior.sample(&Default::default(), &[], 64, |_, _| {})).unwrap();
    // the second sample: buffers, uniforms and the run's state all come from the first
    g.reset_stats();
    pollster::block_on(prior.sample(&Default::default(), &[], 64, |_, _| {})).unwrap();
    let s = g.stats();
    assert_eq!(s.buffers_created, 0, "{s:?}");
    eprintln!("one sample of {n} tokens: {s:?}");
    let per_token = s.dispatches as f64 / n;
    assert!(per_token <= TOKEN_DISPATCHES_MMNIST, "{per_token} dispatches a token");
    // progress every 64 tokens: one readback each (the last one carries the finished grid)
    assert_eq!(s.map_waits, n as u64 / 64, "{s:?}");
    // each token runs the same chain, counted from the config: per layer one attention and four
    // matrix-vector products (q/k/v as one, the output projection, two MLP layers; the layer
    // norms fused into the products after them); then fc_out (with the final norm) and the draw;
    // the embedding (a row of fc_in of the codebook, plus the position's) for every token but
    // the first (which starts from the start-of-sequence vector)
    let (n, layers) = (n as u64, gpt.config.layers as u64);
    assert_eq!(s.by_kernel.get("decode_attention").copied(), Some(layers * n), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("gemv").copied(), Some((4 * layers + 1) * n), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("embed").copied(), Some(n - 1));
    assert_eq!(s.by_kernel.get("sample_token").copied(), Some(n));
    // bytes of weights a token reads: the shipped f16 file's matrices at 2 bytes each (q/k/v,
    // the output projection and the MLP per layer, then fc_out), plus biases, norms and the
    // embedding rows in f32, which add under 10 %
    let (d, codes) = (gpt.config.hidden_dim as u64, gpt.config.n_codes as u64);
    let matrices = 2 * (12 * d * d * layers + d * codes);
    let per_token = s.weight_bytes as f64 / n as f64;
    eprintln!("{per_token:.0} bytes of weights a token, {matrices} of them the f16 matrices");
    assert!(per_token >= matrices as f64 && per_token <= 1.1 * matrices as f64, "{per_token} bytes of weights a token; the f16 matrices are {matrices}");
}

#[test]
fn a_profiled_chunk_times_every_dispatch_with_its_flops() {
    let g = gpu();
    let (_, t, clip) = natural64_chunk(&g);
    if !g.has_timestamps() {
        // what can still be checked: profiling is refused with a clear error, not a panic or an
        // empty report, and the chunk still runs and counts its dispatches
        eprintln!("SKIPPED IN PART: {} has no timestamp queries, so no dispatch is timed here; checking that profiling is refused cleanly", g.describe());
        let e = g.start_profile().unwrap_err().to_string();
        assert!(e.contains("no timestamp queries"), "{e}");
        g.reset_stats();
        let x = t.preprocess(&g, &clip, 0..4).unwrap();
        pollster::block_on(t.reconstruct(&g, &x, &|| 0.0)).unwrap();
        assert!(g.stats().dispatches > 0);
        assert!(pollster::block_on(g.finish_profile()).unwrap_err().to_string().contains("no profile was started"));
        return;
    }
    g.reset_stats();
    g.start_profile().unwrap();
    let x = t.preprocess(&g, &clip, 0..4).unwrap();
    pollster::block_on(t.reconstruct(&g, &x, &|| 0.0)).unwrap();
    let timings = pollster::block_on(g.finish_profile()).unwrap();
    let s = g.stats();
    // one timing per dispatch, in the counters' kernels, carrying the same useful FLOPs
    assert_eq!(timings.len() as u64, s.dispatches);
    let mut kernels = std::collections::BTreeMap::new();
    for t in &timings {
        *kernels.entry(t.kernel).or_insert(0u64) += 1;
    }
    assert_eq!(kernels, s.by_kernel);
    assert_eq!(timings.iter().map(|t| t.flops).sum::<u64>(), s.flops_useful);
    assert!(timings.iter().all(|t| t.nanoseconds > 0.0), "{timings:?}");
}

#[test]
fn a_videogpt_width_token_stays_within_its_budget() {
    // VideoGPT's prior width and depth (576 wide, 4 heads, 8 layers, sparse attention, 1024
    // codes), random weights, over a small grid so that two samples run in seconds on lavapipe:
    // the dispatches a token does not depend on the grid
    let g = gpu();
    let vq = videogpt::VqVaeConfig { n_codes: 1024, resolution: 16, sequence_length: 8, ..Default::default() };
    let config = videogpt::gpt::GptConfig::videogpt_default(&vq);
    let gpt = videogpt::gpt::Gpt::load(&videogpt::gpt::random_weights(&config, &vq, 1), Some(&videogpt::vqvae::random_weights(&vq, 1))).unwrap();
    let prior = GpuPrior::new(&g, &gpt).unwrap();
    let n = gpt.config.positions() as u64;
    pollster::block_on(prior.sample(&Default::default(), &[], 0, |_, _| {})).unwrap();
    g.reset_stats();
    pollster::block_on(prior.sample(&Default::default(), &[], 0, |_, _| {})).unwrap();
    let s = g.stats();
    eprintln!("one sample of {n} tokens, 576 wide: {s:?}");
    assert_eq!(s.buffers_created, 0, "{s:?}");
    // 5 dispatches a layer, 3 a token (the first token has no embedding to look up)
    assert_eq!(s.dispatches, 43 * n - 1, "{s:?}");
}
