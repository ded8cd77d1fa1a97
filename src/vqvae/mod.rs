//! The VideoGPT VQ-VAE (Yan et al. 2021; spec §1): a 3-D conv encoder with axial-attention
//! residual blocks, a 2048-code EMA codebook, and a mirrored decoder of transposed convs.
//!
//! Paper: <https://arxiv.org/abs/2104.10157>. Follows `videogpt/vqvae.py` of
//! <https://github.com/wilson1yan/VideoGPT> (its state_dict keys, padding and stride order);
//! `spec §N` is docs/videogpt-spec.md.

use std::collections::HashMap;

use crate::backend::{Backend, Codes, Dims, Tensor, Volume};
use crate::nn::{
    batchnorm_affine, load_axial_attention, load_batchnorm, load_codebook, load_conv_transpose, project_codebook, AxialAttention, ChannelAffine, Codebook,
    Conv3d, ConvTranspose3d, HostConv,
};
use crate::weights::WeightFile;
use crate::{bail, Error, Result};

/// VideoGPT's VQ-VAE hparams, under VideoGPT's own names (the safetensors `__metadata__`).
mod config;
mod tooling;

pub use config::{VqVaeConfig, MAX_RESOLUTION, MAX_SEQUENCE_LENGTH};
pub use tooling::{init_codebook_from_clip, random_weights, CodeDisagreement};

/// AttentionResidualBlock: `x + axial(relu(bn(conv1(relu(bn(conv3(relu(bn(x)))))))))`,
/// with the two inner BatchNorms folded into the convs before them.
pub struct ResidualBlock<B: Backend> {
    norm: ChannelAffine<B>,
    conv_reduce: Conv3d<B>,
    conv_expand: Conv3d<B>,
    attn: AxialAttention<B>,
}

impl<B: Backend> ResidualBlock<B> {
    fn load(b: &B, w: &mut WeightFile, key: &str, c: usize) -> Result<Self> {
        let k = |i: usize| format!("{key}.block.{i}");
        Ok(ResidualBlock {
            norm: load_batchnorm(b, w, &k(0), c)?,
            conv_reduce: HostConv::load(w, &k(2), c, c / 2, 3, [1; 3], false)?.fold_batchnorm(batchnorm_affine(w, &k(3), c / 2)?).upload(b)?,
            conv_expand: HostConv::load(w, &k(5), c / 2, c, 1, [1; 3], false)?.fold_batchnorm(batchnorm_affine(w, &k(6), c)?).upload(b)?,
            attn: load_axial_attention(b, w, &k(8), c)?,
        })
    }

    fn forward(&self, b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let h = b.conv3d_normed(x, &self.norm, &self.conv_reduce, true)?;
        let h = b.conv3d(&h, &self.conv_expand, None, true)?;
        b.axial_attention_block(&h, &self.attn, x)
    }
}

/// `n_res_layers` residual blocks, then BatchNorm3d and ReLU. The last two are applied by the
/// layer after the stack, fused into its input (`conv3d_normed`).
pub struct ResStack<B: Backend> {
    blocks: Vec<ResidualBlock<B>>,
    norm: ChannelAffine<B>,
}

impl<B: Backend> ResStack<B> {
    fn load(b: &B, w: &mut WeightFile, key: &str, c: usize, n: usize) -> Result<Self> {
        let blocks = (0..n).map(|i| ResidualBlock::load(b, w, &format!("{key}.{i}"), c)).collect::<Result<_>>()?;
        Ok(ResStack { blocks, norm: load_batchnorm(b, w, &format!("{key}.{n}"), c)? })
    }

    /// The blocks; the caller applies `norm` and ReLU.
    fn forward_blocks(&self, b: &B, mut x: Tensor<B>) -> Result<Tensor<B>> {
        for block in &self.blocks {
            x = block.forward(b, &x)?;
        }
        Ok(x)
    }
}

pub struct Encoder<B: Backend> {
    convs: Vec<Conv3d<B>>,
    conv_last: Conv3d<B>,
    res_stack: ResStack<B>,
}

impl<B: Backend> Encoder<B> {
    fn forward(&self, b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let mut h = b.conv3d(x, &self.convs[0], None, true)?;
        for conv in &self.convs[1..] {
            h = b.conv3d(&h, conv, None, true)?;
        }
        let h = b.conv3d(&h, &self.conv_last, None, false)?;
        self.res_stack.forward_blocks(b, h) // its BatchNorm and ReLU go with pre_vq_conv
    }
}

pub struct Decoder<B: Backend> {
    res_stack: ResStack<B>,
    convts: Vec<ConvTranspose3d<B>>,
}

impl<B: Backend> Decoder<B> {
    fn forward(&self, b: &B, x: Tensor<B>) -> Result<Tensor<B>> {
        let h = self.res_stack.forward_blocks(b, x)?;
        let last = self.convts.len() - 1;
        // the stack's BatchNorm and ReLU fused into the first transposed conv's input
        let mut h = b.conv_transpose3d_normed(&h, &self.res_stack.norm, &self.convts[0], last > 0)?;
        for (i, convt) in self.convts.iter().enumerate().skip(1) {
            h = b.conv_transpose3d(&h, convt, i < last)?; // no ReLU (and no squashing) after the last
        }
        Ok(h)
    }
}

pub struct VqVae<B: Backend> {
    pub config: VqVaeConfig,
    encoder: Encoder<B>,
    decoder: Decoder<B>,
    pre_vq_conv: Conv3d<B>,
    codebook: Codebook<B>,
    /// `post_vq_conv` of every code (`nn::project_codebook`): the decoder's input per code.
    decode_table: Codebook<B>,
}

impl<B: Backend> VqVae<B> {
    /// Load from the bytes of a `.safetensors` file with VideoGPT state_dict keys and hparams in
    /// its metadata. `prefix` is `""` for a VQ-VAE file and `"vqvae."` inside a GPT checkpoint.
    pub fn load(b: &B, bytes: &[u8], prefix: &str) -> Result<Self> {
        let mut w = WeightFile::parse(bytes)?;
        // inside a GPT checkpoint the VQ-VAE's hparams carry the same prefix as its tensors
        let meta: HashMap<String, String> = if prefix.is_empty() {
            w.metadata().clone()
        } else {
            w.metadata().iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone()))).collect()
        };
        let config = VqVaeConfig::from_metadata(&meta)?;
        let model = Self::from_weights(b, &mut w, prefix, config)?;
        w.finish(prefix)?;
        Ok(model)
    }

    pub fn from_weights(b: &B, w: &mut WeightFile, prefix: &str, config: VqVaeConfig) -> Result<Self> {
        config.validate()?;
        let (c, e) = (config.n_hiddens, config.embedding_dim);
        let strides = config.strides();
        let key = |k: &str| format!("{prefix}{k}");

        let convs = strides
            .iter()
            .enumerate()
            .map(|(i, &s)| HostConv::load(w, &key(&format!("encoder.convs.{i}")), if i == 0 { 3 } else { c }, c, 4, s, true)?.upload(b))
            .collect::<Result<_>>()?;
        let encoder = Encoder {
            convs,
            conv_last: HostConv::load(w, &key("encoder.conv_last"), c, c, 3, [1; 3], true)?.upload(b)?,
            res_stack: ResStack::load(b, w, &key("encoder.res_stack"), c, config.n_res_layers)?,
        };
        let res_stack = ResStack::load(b, w, &key("decoder.res_stack"), c, config.n_res_layers)?;
        let convts = strides
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let cout = if i + 1 == strides.len() { 3 } else { c };
                load_conv_transpose(b, w, &key(&format!("decoder.convts.{i}")), c, cout, s)
            })
            .collect::<Result<_>>()?;
        let pre_vq_conv = HostConv::load(w, &key("pre_vq_conv"), c, e, 1, [1; 3], true)?.upload(b)?;
        let post_vq_conv = HostConv::load(w, &key("post_vq_conv"), e, c, 1, [1; 3], true)?;
        let (codebook, embeddings) = load_codebook(b, w, &key("codebook"), config.n_codes, e)?;
        Ok(VqVae {
            encoder,
            decoder: Decoder { res_stack, convts },
            pre_vq_conv,
            decode_table: project_codebook(b, &embeddings, config.n_codes, &post_vq_conv)?,
            codebook,
            config,
        })
    }

    /// `vqvae.encode(x)`: a 3×T×H×W clip in [-0.5, 0.5] → its T'×H'×W' codes.
    pub fn encode(&self, b: &B, x: &Tensor<B>) -> Result<Codes<B>> {
        if x.dims.c != 3 {
            bail!(Input, "the VQ-VAE takes RGB clips (3 channels), got {}", x.dims.c);
        }
        self.config.check_clip(x.dims.t, x.dims.h, x.dims.w)?;
        let z = self.pre_vq_conv_forward(b, x)?;
        b.codebook_argmin(&z, &self.codebook)
    }

    /// `encode`, and the decoder's input for those codes (what `decode` starts from), in one pass
    /// where the backend can: a reconstruction needs both.
    pub fn encode_for_decode(&self, b: &B, x: &Tensor<B>) -> Result<(Codes<B>, Tensor<B>)> {
        if x.dims.c != 3 {
            bail!(Input, "the VQ-VAE takes RGB clips (3 channels), got {}", x.dims.c);
        }
        self.config.check_clip(x.dims.t, x.dims.h, x.dims.w)?;
        let z = self.pre_vq_conv_forward(b, x)?;
        b.codebook_argmin_lookup(&z, &self.codebook, &self.decode_table)
    }

    /// The decoder from its input (`encode_for_decode`'s second part).
    pub fn decode_embedded(&self, b: &B, h: Tensor<B>) -> Result<Tensor<B>> {
        self.decoder.forward(b, h)
    }

    /// The continuous latents before quantisation, `pre_vq_conv(encoder(x))`: E×T'×H'×W'.
    pub fn latents(&self, b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        self.config.check_clip(x.dims.t, x.dims.h, x.dims.w)?;
        self.pre_vq_conv_forward(b, x)
    }

    fn pre_vq_conv_forward(&self, b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let h = self.encoder.forward(b, x)?;
        b.conv3d_normed(&h, &self.encoder.res_stack.norm, &self.pre_vq_conv, false)
    }

    /// `vqvae.decode(codes)`: codebook rows → post_vq_conv → decoder, a 3×T×H×W clip (unclamped).
    /// The first two are one lookup in `decode_table`.
    pub fn decode(&self, b: &B, codes: &Codes<B>) -> Result<Tensor<B>> {
        let h = b.codebook_lookup(codes, &self.decode_table)?;
        self.decoder.forward(b, h)
    }

    /// Encode a host clip and bring the codes back.
    pub async fn encode_volume(&self, b: &B, x: &Volume) -> Result<Vec<u32>> {
        let codes = self.encode(b, &b.upload_volume(x)?)?;
        b.read_codes(&codes).await
    }

    /// Decode host codes of a T'×H'×W' grid and bring the clip back.
    pub async fn decode_codes(&self, b: &B, codes: &[u32], dims: [usize; 3]) -> Result<Volume> {
        if codes.len() != dims.iter().product::<usize>() {
            bail!(Input, "{} codes do not fill a {dims:?} grid", codes.len());
        }
        crate::tokens::check_range(codes, self.config.n_codes)?;
        if dims.contains(&0) {
            bail!(Input, "empty latent grid {dims:?}");
        }
        let x = self.decode(b, &b.upload_codes(codes, dims)?)?;
        b.read_volume(&x).await
    }

    /// Output dims of decoding a T'×H'×W' grid.
    pub fn decoded_dims(&self, latent: [usize; 3]) -> Dims {
        let d = self.config.downsample;
        Dims::new(3, latent[0] * d[0], latent[1] * d[1], latent[2] * d[2])
    }
}
