//! The wgpu backend (WGSL kernels; lavapipe in CI) against the PyTorch reference's goldens, and
//! against the CPU backend on a wider random model whose tiles are all partly filled.

mod common;
use common::*;
use videogpt::{Cpu, Gpu, VqVae, VqVaeConfig};

fn gpu() -> Gpu {
    pollster::block_on(Gpu::new()).unwrap_or_else(|e| {
        panic!("{e}\nThe GPU tests need a Vulkan driver; the README's test command installs mesa-vulkan-drivers (lavapipe).")
    })
}

#[test]
fn stride_444_matches_reference() {
    check_against_golden(&gpu(), "vqvae_444.safetensors", "vqvae_444_golden.safetensors", "");
}

#[test]
fn non_square_clip_matches_reference() {
    check_against_golden(&gpu(), "vqvae_444.safetensors", "vqvae_444_golden.safetensors", "rect_");
}

#[test]
fn stride_244_matches_reference() {
    check_against_golden(&gpu(), "vqvae_244.safetensors", "vqvae_244_golden.safetensors", "");
}

#[test]
fn stride_422_matches_reference() {
    check_against_golden(&gpu(), "vqvae_422.safetensors", "vqvae_422_golden.safetensors", "");
}

#[test]
fn f16_weights_match_reference() {
    check_against_golden(&gpu(), "vqvae_444_f16.safetensors", "vqvae_444_f16_golden.safetensors", "");
}

#[test]
fn wide_random_model_agrees_with_cpu() {
    // 80 channels (2 heads of 40, 720-channel qkv), 96 codes: output-channel tiles of 64 are
    // split unevenly, and the clip is 8×48×40 so no spatial size is a multiple of 64
    let config = VqVaeConfig {
        embedding_dim: 24,
        n_codes: 96,
        n_hiddens: 80,
        n_res_layers: 2,
        downsample: [2, 4, 4],
        resolution: 48,
        sequence_length: 8,
    };
    let bytes = videogpt::vqvae::random_weights(&config, 7);
    let g = gpu();
    let (on_gpu, on_cpu) = (VqVae::load(&g, &bytes, "").unwrap(), VqVae::load(&Cpu, &bytes, "").unwrap());
    let clip = videogpt::video::io::read_video(&fixture("carphone_8f.npy")).unwrap();
    let mut x = videogpt::video::preprocess(&clip, 48, Some(8)).unwrap();
    // crop W to 40 to make it non-square
    let d = x.dims;
    x.data = (0..3 * 8 * 48).flat_map(|row| x.data[row * 48..row * 48 + 40].to_vec()).collect();
    x.dims = videogpt::Dims::new(d.c, d.t, d.h, 40);

    let a = pollster::block_on(on_gpu.encode_volume(&g, &x)).unwrap();
    let b = pollster::block_on(on_cpu.encode_volume(&Cpu, &x)).unwrap();
    assert_eq!(a, b, "GPU and CPU codes differ");
    let distinct = a.iter().collect::<std::collections::BTreeSet<_>>().len();
    assert!(distinct > 1, "degenerate test: every position got the same code");
    let ya = pollster::block_on(on_gpu.decode_codes(&g, &a, [4, 12, 10])).unwrap();
    let yb = pollster::block_on(on_cpu.decode_codes(&Cpu, &b, [4, 12, 10])).unwrap();
    let err = max_abs_diff(&ya.data, &yb.data);
    let scale = yb.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    eprintln!("wide model: {distinct} distinct codes, decode max |gpu − cpu| = {err:e} (output scale {scale})");
    assert!(err <= 1e-4 * scale.max(1.0), "GPU and CPU decodes differ by {err}");
}
