//! The GPU runtime's counters (`GpuStats`), on lavapipe: they count what the code asks of the
//! device, checked against what the model's architecture implies, and they hold today's budgets,
//! so that a change that adds dispatches, allocations or readbacks to a chunk or a sampled token
//! fails here. docs/performance.md keeps the table (`videogpt bench --gpu-stats`).

mod common;

use common::{fixture, read};
use videogpt::gpu::{GpuPrior, GpuStats};
use videogpt::session::Tokenizer;
use videogpt::video::io::read_video;
use videogpt::Gpu;

fn gpu() -> Gpu {
    pollster::block_on(Gpu::new()).expect("a wgpu adapter (lavapipe in CI: apt install mesa-vulkan-drivers)")
}

/// Budgets measured on the current runtime (per steady-state chunk or token); the GPU-plan work
/// (reused buffers and bind groups, one readback per chunk) lowers them.
const CHUNK_DISPATCHES: u64 = 36;
const CHUNK_BUFFERS: u64 = 79;
const CHUNK_MAP_WAITS: u64 = 3;
const TOKEN_DISPATCHES_MMNIST: f64 = 41.0;

#[test]
fn a_reconstructed_chunk_counts_what_the_architecture_implies() {
    let g = gpu();
    let model = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/models/natural-64.safetensors")).unwrap();
    let t = Tokenizer::load(&g, &model, "").unwrap();
    let c = t.config().clone();
    let clip = read_video(&fixture("carphone_8f.npy")).unwrap().slice(0, 4);
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
    // 1×1×1 convs and the attention's fused q/k/v and output projections; the pre- and post-VQ
    // convs; the decoder's transposed convs; one attention dispatch a block for its three axes
    let strided = c.downsample.iter().map(|d| d.trailing_zeros()).max().unwrap() as u64;
    let blocks = 2 * c.n_res_layers as u64;
    assert_eq!(s.by_kernel.get("conv3d").copied(), Some(strided + 1 + 4 * blocks + 2), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("conv_transpose3d").copied(), Some(strided), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("axial_attention").copied(), Some(blocks), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("codebook_argmin"), Some(&1));
    // three readbacks, one after another: the codes, the output and the input (as f32)
    assert_eq!(s.map_waits, CHUNK_MAP_WAITS);
    assert_eq!(s.readback_bytes, (16 * 16 + 2 * 3 * 4 * 64 * 64) * 4);
    assert!(s.dispatches <= CHUNK_DISPATCHES && s.buffers_created <= CHUNK_BUFFERS, "over budget: {s:?}");
}

#[test]
fn a_sampled_token_stays_within_its_budget() {
    let g = gpu();
    let gpt = videogpt::gpt::Gpt::load(&read("../../models/mmnist-prior.safetensors"), None).unwrap();
    let prior = GpuPrior::new(&g, &gpt).unwrap();
    let n = gpt.config.positions() as f64;
    g.reset_stats();
    pollster::block_on(prior.sample(&Default::default(), &[], 64, |_, _| {})).unwrap();
    let s = g.stats();
    eprintln!("one sample of {n} tokens: {s:?}");
    let per_token = s.dispatches as f64 / n;
    assert!(per_token <= TOKEN_DISPATCHES_MMNIST, "{per_token} dispatches a token");
    // progress every 64 tokens: one readback each (the last one carries the finished grid)
    assert_eq!(s.map_waits, n as u64 / 64, "{s:?}");
    // each token runs the same chain, counted from the config: per layer two layer norms, one
    // attention, six matrix-vector products (q, k, v, output projection, two MLP layers); then a
    // final layer norm, fc_out and the draw; fc_in and the codebook lookup for every token but
    // the first (which starts from the start-of-sequence vector)
    let (n, layers) = (n as u64, gpt.config.layers as u64);
    assert_eq!(s.by_kernel.get("layer_norm").copied(), Some((2 * layers + 1) * n), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("decode_attention").copied(), Some(layers * n), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("gemv").copied(), Some((6 * layers + 2) * n - 1), "{:?}", s.by_kernel);
    assert_eq!(s.by_kernel.get("codebook_lookup").copied(), Some(n - 1));
    assert_eq!(s.by_kernel.get("sample_token").copied(), Some(n));
}
