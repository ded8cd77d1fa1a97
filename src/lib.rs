//! VideoGPT (Yan, Zhang, Abbeel, Srinivas 2021, <https://arxiv.org/abs/2104.10157>) in Rust: the
//! VQ-VAE video tokenizer (`vqvae`) and the GPT prior over its codes (`gpt`, `resnet`), on a
//! plain-Rust CPU backend (`cpu`) and on WGSL compute kernels through wgpu (`gpu`: Vulkan/Metal/DX12
//! natively, WebGPU in the browser). Weights are VideoGPT state_dicts stored as safetensors
//! (`weights`). `engine` is the handle both front ends hold (a device and its models), `workflow`
//! the workflows the CLI and the web page (`web`) share. Comments that
//! cite `spec §N` mean docs/videogpt-spec.md, the architecture in our words.

pub mod backend;
pub mod checkpoint;
pub mod cpu;
pub mod engine;
pub mod entropy;
mod error;
pub mod gpt;
pub mod gpu;
pub mod metrics;
pub mod nn;
pub mod resnet;
pub mod rng;
pub mod tensor;
pub mod tokens;
pub mod vgt;
pub mod video;
pub mod vqvae;
#[cfg(target_arch = "wasm32")]
pub mod web;
pub mod weights;
pub mod workflow;

pub use backend::{Backend, Dims, Volume};
pub use cpu::Cpu;
pub use error::{Error, Result};
pub use gpu::Gpu;
pub use vqvae::{VqVae, VqVaeConfig};
