//! The few operations a VideoGPT VQ-VAE needs, as a trait with two implementations:
//! [`crate::cpu::Cpu`] (plain Rust, the reference in tests and the fallback) and
//! [`crate::gpu::Gpu`] (WGSL compute kernels on wgpu). The model in [`crate::vqvae`] is written
//! once against this trait.

pub use crate::tensor::{Dims, Volume};
use crate::video::Video;
use crate::Result;

// --- what the operations take: layers' parameters in inference form, resident on a backend ---

/// `SamePadConv3d`: zero padding `ceil((k−s)/2)` in front and `floor((k−s)/2)` behind, then a
/// valid convolution. Weight layout `[cout][cin][kt][kh][kw]`, as in PyTorch.
pub struct Conv3d<B: Backend + ?Sized> {
    pub cin: usize,
    pub cout: usize,
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub weight: B::Buffer,
    pub bias: B::Buffer,
}

impl<B: Backend> Conv3d<B> {
    /// Front padding per dim: the extra zero of an odd `k − s` goes in front (spec §1.2).
    pub fn pad_front(&self) -> [usize; 3] {
        // a 1×1×1 conv with stride 2 (the ResNet's projections) has no padding at all
        std::array::from_fn(|d| self.kernel[d].saturating_sub(self.stride[d]).div_ceil(2))
    }
}

/// `SamePadConvTranspose3d` with k=4: equal to the full transposed convolution cropped to
/// `[1, 1 + n·s)` in every dim (spec §1.3). Weight layout `[cin][cout][4][4][4]`.
pub struct ConvTranspose3d<B: Backend + ?Sized> {
    pub cin: usize,
    pub cout: usize,
    pub stride: [usize; 3],
    pub weight: B::Buffer,
    pub bias: B::Buffer,
}

/// `y = x·scale[c] + shift[c]`: eval-mode BatchNorm3d.
pub struct ChannelAffine<B: Backend + ?Sized> {
    pub channels: usize,
    pub scale: B::Buffer,
    pub shift: B::Buffer,
}

/// `nn.LayerNorm(C)` over the channels of every position (eps 1e-5, biased variance), as the
/// frame-conditioning ResNet's NormReLU uses it.
pub struct ChannelNorm<B: Backend + ?Sized> {
    pub channels: usize,
    pub weight: B::Buffer,
    pub bias: B::Buffer,
}

/// AxialBlock: three MultiHeadAttentions (along W, H, T) whose outputs are summed.
/// `qkv` stacks the nine C×C projections as one 1×1×1 conv (axis-major: W, H, T; then q, k, v);
/// `out` stacks the three `fc` layers side by side (3C → C) with their biases summed, so that the
/// sum of the three attentions and the residual add happen in one GEMM.
pub struct AxialAttention<B: Backend + ?Sized> {
    pub channels: usize,
    pub n_head: usize,
    pub qkv: Conv3d<B>,
    pub out: Conv3d<B>,
}

pub struct Codebook<B: Backend + ?Sized> {
    pub n_codes: usize,
    pub dim: usize,
    /// `[n_codes][dim]`
    pub embeddings: B::Buffer,
    /// `‖e_k‖²`, summed in f32 in index order, shared by both backends.
    pub norms: B::Buffer,
}

// --- the operations ---

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
    /// `conv3d(relu(bn(x)))`: the BatchNorm and ReLU before a conv, fused into its input where the
    /// backend can (a separate pass otherwise).
    fn conv3d_normed(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>, conv: &Conv3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        self.conv3d(&self.affine_relu(x, bn)?, conv, None, relu)
    }
    /// `conv_transpose3d(relu(bn(x)))`, fused as [`Backend::conv3d_normed`] is.
    fn conv_transpose3d_normed(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>, convt: &ConvTranspose3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        self.conv_transpose3d(&self.affine_relu(x, bn)?, convt, relu)
    }
    /// A ConvTranspose3d weight as PyTorch stores it (`[cin][cout][4][4][4]`), uploaded in the
    /// layout this backend's [`Backend::conv_transpose3d`] reads.
    fn upload_conv_transpose(&self, weight: &[f32], _cin: usize, _cout: usize, _stride: [usize; 3]) -> Result<Self::Buffer> {
        self.upload(weight)
    }
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
    /// The attention half of a residual block, `residual + out(axial_attention(qkv(h)))`: a
    /// backend may fuse it (the CPU keeps the 9C projections position-major throughout).
    fn axial_attention_block(&self, h: &Tensor<Self>, attn: &AxialAttention<Self>, residual: &Tensor<Self>) -> Result<Tensor<Self>> {
        let qkv = self.conv3d(h, &attn.qkv, None, false)?;
        let a = self.axial_attention(&qkv, attn)?;
        self.conv3d(&a, &attn.out, Some(residual), false)
    }
    /// Nearest code per position with VideoGPT's distance `‖x‖² − 2x·e + ‖e‖²`, first index on ties.
    fn codebook_argmin(&self, z: &Tensor<Self>, codebook: &Codebook<Self>) -> Result<Codes<Self>>;
    /// The codes, and `table[codes]` (channel-first) for the decoder: one pass where the backend
    /// can fuse them.
    fn codebook_argmin_lookup(&self, z: &Tensor<Self>, codebook: &Codebook<Self>, table: &Codebook<Self>) -> Result<(Codes<Self>, Tensor<Self>)> {
        let codes = self.codebook_argmin(z, codebook)?;
        let h = self.codebook_lookup(&codes, table)?;
        Ok((codes, h))
    }
    /// `embeddings[codes]`, channel-first.
    fn codebook_lookup(&self, codes: &Codes<Self>, codebook: &Codebook<Self>) -> Result<Tensor<Self>>;

    /// The GPU backend itself, where this is it: what only the GPU can do (the WGSL sampler, frames
    /// given as images) asks for it.
    fn as_gpu(&self) -> Option<&crate::Gpu> {
        None
    }

    /// Whether an operation has finished when it returns (the CPU), rather than being recorded
    /// for later (the GPU): only then can a caller time one part of a chain.
    fn is_eager(&self) -> bool {
        false
    }

    async fn read_volume(&self, x: &Tensor<Self>) -> Result<Volume>;
    async fn read_codes(&self, codes: &Codes<Self>) -> Result<Vec<u32>>;

    /// A reconstruction brought back to the host: its codes, and its input and output clips as
    /// uint8 frames (`video::input_to_video` and `video::to_video`). The GPU does this in one readback of bytes.
    async fn read_reconstruction(&self, codes: &Codes<Self>, input: &Tensor<Self>, output: &Tensor<Self>) -> Result<(Vec<u32>, Video, Video)> {
        let tokens = self.read_codes(codes).await?;
        let output = crate::video::to_video(&self.read_volume(output).await?)?;
        let input = crate::video::input_to_video(&self.read_volume(input).await?)?;
        Ok((tokens, input, output))
    }
}
