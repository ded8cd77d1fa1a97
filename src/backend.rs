//! The few operations a VideoGPT VQ-VAE needs, as a trait with two implementations:
//! [`crate::cpu::Cpu`] (plain Rust, the reference in tests and the fallback) and
//! [`crate::gpu::Gpu`] (WGSL compute kernels on wgpu). The model in [`crate::vqvae`] is written
//! once against this trait.

use crate::nn::{AxialAttention, ChannelAffine, ChannelNorm, Codebook, Conv3d, ConvTranspose3d};
use crate::Result;

/// Sizes of a channel-first C×T×H×W volume (one clip; the batch is a loop outside).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dims {
    pub c: usize,
    pub t: usize,
    pub h: usize,
    pub w: usize,
}

impl Dims {
    pub fn new(c: usize, t: usize, h: usize, w: usize) -> Self {
        Dims { c, t, h, w }
    }
    /// Positions per channel, T·H·W.
    pub fn positions(&self) -> usize {
        self.t * self.h * self.w
    }
    pub fn len(&self) -> usize {
        self.c * self.positions()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A host-side C×T×H×W float volume, row-major (w fastest).
#[derive(Clone, Debug, PartialEq)]
pub struct Volume {
    pub dims: Dims,
    pub data: Vec<f32>,
}

/// An activation resident on a backend.
pub struct Tensor<B: Backend + ?Sized> {
    pub dims: Dims,
    pub buf: B::Buffer,
}

/// Latent codebook indices of one clip, T'×H'×W', resident on a backend.
pub struct Codes<B: Backend + ?Sized> {
    pub dims: [usize; 3],
    pub buf: B::IndexBuffer,
}

#[allow(async_fn_in_trait)]
pub trait Backend {
    /// f32 storage for weights and activations.
    type Buffer;
    /// u32 storage for codebook indices.
    type IndexBuffer;

    fn upload(&self, data: &[f32]) -> Result<Self::Buffer>;
    fn upload_volume(&self, v: &Volume) -> Result<Tensor<Self>> {
        Ok(Tensor { dims: v.dims, buf: self.upload(&v.data)? })
    }
    fn upload_codes(&self, codes: &[u32], dims: [usize; 3]) -> Result<Codes<Self>>;
    /// VideoGPT's `preprocess` of a whole clip (resize the shorter side, centre crop, to
    /// [-0.5, 0.5]) onto the device: a 3×T×res×res tensor.
    fn preprocess(&self, video: &crate::video::Video, resolution: usize, resize: crate::video::Resize) -> Result<Tensor<Self>> {
        self.upload_volume(&crate::video::preprocess(video, resolution, None, resize)?)
    }

    /// SamePadConv3d, then `+ residual` and/or ReLU when asked (fused where the backend can).
    fn conv3d(&self, x: &Tensor<Self>, conv: &Conv3d<Self>, residual: Option<&Tensor<Self>>, relu: bool) -> Result<Tensor<Self>>;
    /// SamePadConvTranspose3d (k=4), then ReLU when asked.
    fn conv_transpose3d(&self, x: &Tensor<Self>, convt: &ConvTranspose3d<Self>, relu: bool) -> Result<Tensor<Self>>;
    /// Eval-mode BatchNorm3d followed by ReLU: `max(x·scale[c] + shift[c], 0)`.
    fn affine_relu(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>) -> Result<Tensor<Self>>;
    /// LayerNorm over the channels at each position, optional ReLU, then optionally
    /// `relu(· + residual)`: the frame-conditioning ResNet's NormReLU and its block output.
    fn channel_norm(&self, x: &Tensor<Self>, norm: &ChannelNorm<Self>, relu: bool, residual: Option<&Tensor<Self>>) -> Result<Tensor<Self>>;
    /// Softmax attention along W, H and T of `qkv` (9C channels: for axis W,H,T the q,k,v
    /// projections), giving the 3C channels of the three per-axis outputs before their `fc`.
    fn axial_attention(&self, qkv: &Tensor<Self>, attn: &AxialAttention<Self>) -> Result<Tensor<Self>>;
    /// Nearest code per position with VideoGPT's distance `‖x‖² − 2x·e + ‖e‖²`, first index on ties.
    fn codebook_argmin(&self, z: &Tensor<Self>, codebook: &Codebook<Self>) -> Result<Codes<Self>>;
    /// `embeddings[codes]`, channel-first.
    fn codebook_lookup(&self, codes: &Codes<Self>, codebook: &Codebook<Self>) -> Result<Tensor<Self>>;

    async fn read_volume(&self, x: &Tensor<Self>) -> Result<Volume>;
    async fn read_codes(&self, codes: &Codes<Self>) -> Result<Vec<u32>>;
}
