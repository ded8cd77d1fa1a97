//! The frame encoder of frame-conditioned VideoGPT priors (spec §3.5): VideoGPT's `resnet34`
//! with the CIFAR stem, `stride=(1,4,4)`, `resnet_dim=240`, and LayerNorm over channels in its
//! NormReLU layers. Conditioning frames (3×n×res×res in [-0.5, 0.5]) become 240×n×res/4×res/4
//! features that every transformer block reads by cross-attention.
//!
//! Follows `videogpt/resnet.py` of <https://github.com/wilson1yan/VideoGPT>; `spec §N` is
//! docs/videogpt-spec.md.

use crate::backend::{Backend, Tensor};
use crate::nn::{ChannelNorm, Conv3d};
use crate::weights::WeightFile;
use crate::{bail, Result};

/// Width of the features, fixed in VideoGPT.
pub const RESNET_DIM: usize = 240;
/// (in, out, blocks, spatial stride) of the four groups.
const GROUPS: [(usize, usize, usize, usize); 4] = [(64, 64, 3, 1), (64, 128, 4, 2), (128, 256, 6, 2), (256, RESNET_DIM, 3, 1)];

/// The state_dict keys of the ResNet (under `resnet.`) with their shapes.
pub fn state_dict_shapes() -> Vec<(String, Vec<usize>)> {
    let mut keys = vec![("resnet.stem.0.weight".to_string(), vec![64, 3, 3, 3, 3])];
    let norm = |keys: &mut Vec<(String, Vec<usize>)>, key: String, c: usize| {
        keys.push((format!("{key}.norm.norm.weight"), vec![c]));
        keys.push((format!("{key}.norm.norm.bias"), vec![c]));
    };
    norm(&mut keys, "resnet.stem.1".into(), 64);
    for (g, &(cin, cout, blocks, _)) in GROUPS.iter().enumerate() {
        for j in 0..blocks {
            let key = if j == 0 { format!("resnet.group{}.start_block", g + 1) } else { format!("resnet.group{}.blocks.{}", g + 1, j - 1) };
            let c_in = if j == 0 { cin } else { cout };
            if j == 0 {
                keys.push((format!("{key}.proj_conv.weight"), vec![cout, cin, 1, 1, 1]));
                norm(&mut keys, format!("{key}.proj_bnr"), cout);
            }
            keys.push((format!("{key}.conv1.weight"), vec![cout, c_in, 3, 3, 3]));
            norm(&mut keys, format!("{key}.bnr1"), cout);
            keys.push((format!("{key}.conv2.weight"), vec![cout, cout, 3, 3, 3]));
            norm(&mut keys, format!("{key}.bnr2"), cout);
        }
    }
    keys
}

/// `relu(NormReLU(conv2(NormReLU(conv1(x)))) + shortcut)`, the shortcut being a strided 1×1×1
/// conv + LayerNorm in each group's first block. The convs have symmetric padding 1, which
/// equals SamePadConv's for k3 with stride 1, and for stride 2 on the even sizes allowed here.
struct ResidualBlock<B: Backend> {
    projection: Option<(Conv3d<B>, ChannelNorm<B>)>,
    conv1: Conv3d<B>,
    bnr1: ChannelNorm<B>,
    conv2: Conv3d<B>,
    bnr2: ChannelNorm<B>,
}

pub struct ResNet<B: Backend> {
    stem: (Conv3d<B>, ChannelNorm<B>),
    blocks: Vec<ResidualBlock<B>>,
}

fn conv<B: Backend>(b: &B, w: &mut WeightFile, key: &str, cin: usize, cout: usize, k: usize, stride: usize) -> Result<Conv3d<B>> {
    let weight = w.take(&format!("{key}.weight"), &[cout, cin, k, k, k])?;
    Ok(Conv3d { cin, cout, kernel: [k; 3], stride: [1, stride, stride], weight: b.upload(&weight)?, bias: b.upload(&vec![0.0; cout])? })
}

fn norm<B: Backend>(b: &B, w: &mut WeightFile, key: &str, c: usize) -> Result<ChannelNorm<B>> {
    let weight = w.take(&format!("{key}.norm.norm.weight"), &[c])?;
    let bias = w.take(&format!("{key}.norm.norm.bias"), &[c])?;
    Ok(ChannelNorm { channels: c, weight: b.upload(&weight)?, bias: b.upload(&bias)? })
}

impl<B: Backend> ResNet<B> {
    /// Load the `resnet.*` keys of a frame-conditioned GPT checkpoint.
    pub fn load(b: &B, w: &mut WeightFile) -> Result<Self> {
        let stem = (conv(b, w, "resnet.stem.0", 3, 64, 3, 1)?, norm(b, w, "resnet.stem.1", 64)?);
        let mut blocks = Vec::new();
        for (g, &(cin, cout, n, stride)) in GROUPS.iter().enumerate() {
            for j in 0..n {
                let key = if j == 0 { format!("resnet.group{}.start_block", g + 1) } else { format!("resnet.group{}.blocks.{}", g + 1, j - 1) };
                let (c_in, s) = if j == 0 { (cin, stride) } else { (cout, 1) };
                let projection = if j == 0 {
                    Some((conv(b, w, &format!("{key}.proj_conv"), cin, cout, 1, stride)?, norm(b, w, &format!("{key}.proj_bnr"), cout)?))
                } else {
                    None
                };
                blocks.push(ResidualBlock {
                    projection,
                    conv1: conv(b, w, &format!("{key}.conv1"), c_in, cout, 3, s)?,
                    bnr1: norm(b, w, &format!("{key}.bnr1"), cout)?,
                    conv2: conv(b, w, &format!("{key}.conv2"), cout, cout, 3, 1)?,
                    bnr2: norm(b, w, &format!("{key}.bnr2"), cout)?,
                });
            }
        }
        Ok(ResNet { stem, blocks })
    }

    /// 3×n×res×res frames → 240×n×res/4×res/4 features (channel-first).
    pub fn forward(&self, b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        if x.dims.c != 3 || !x.dims.h.is_multiple_of(4) || !x.dims.w.is_multiple_of(4) {
            bail!(Input, "conditioning frames must be 3×n×H×W with H and W multiples of 4, got {:?}", x.dims);
        }
        let h = b.conv3d(x, &self.stem.0, None, false)?;
        let mut h = b.channel_norm(&h, &self.stem.1, true, None)?;
        for block in &self.blocks {
            let shortcut = match &block.projection {
                Some((conv, norm)) => Some(b.channel_norm(&b.conv3d(&h, conv, None, false)?, norm, false, None)?),
                None => None,
            };
            let y = b.channel_norm(&b.conv3d(&h, &block.conv1, None, false)?, &block.bnr1, true, None)?;
            let y = b.conv3d(&y, &block.conv2, None, false)?;
            h = b.channel_norm(&y, &block.bnr2, true, Some(shortcut.as_ref().unwrap_or(&h)))?;
        }
        Ok(h)
    }
}
