//! The CPU backend against the PyTorch reference's goldens (tests/fixtures, train/make_fixtures.py).

mod common;
use common::*;
use videogpt::Cpu;

#[test]
fn stride_444_matches_reference() {
    check_against_golden(&Cpu, "vqvae_444.safetensors", "vqvae_444_golden.safetensors", "");
}

#[test]
fn non_square_clip_matches_reference() {
    check_against_golden(&Cpu, "vqvae_444.safetensors", "vqvae_444_golden.safetensors", "rect_");
}

#[test]
fn stride_244_matches_reference() {
    check_against_golden(&Cpu, "vqvae_244.safetensors", "vqvae_244_golden.safetensors", "");
}

#[test]
fn stride_422_matches_reference() {
    check_against_golden(&Cpu, "vqvae_422.safetensors", "vqvae_422_golden.safetensors", "");
}

#[test]
fn f16_weights_match_reference() {
    check_against_golden(&Cpu, "vqvae_444_f16.safetensors", "vqvae_444_f16_golden.safetensors", "");
}
