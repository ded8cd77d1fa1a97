//! VideoGPT (Yan, Zhang, Abbeel, Srinivas 2021) in Rust: the VQ-VAE video tokenizer, on a
//! plain-Rust CPU backend and on WGSL compute kernels through wgpu (Vulkan/Metal/DX12 natively,
//! WebGPU in the browser). Weights are VideoGPT state_dicts stored as safetensors.

pub mod backend;
pub mod cpu;
mod error;
pub mod gpt;
pub mod gpu;
pub mod metrics;
pub mod nn;
pub mod resnet;
pub mod rng;
pub mod session;
pub mod tokens;
pub mod vgt;
pub mod video;
pub mod vqvae;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;

pub use backend::{Backend, Dims, Volume};
pub use cpu::Cpu;
pub use error::{Error, Result};
pub use gpu::Gpu;
pub use vqvae::{VqVae, VqVaeConfig};
