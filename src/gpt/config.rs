//! The prior's hparams (VideoGPT's names in safetensors metadata), its state_dict's keys and
//! parameter count, and the attention pattern they imply (spec §3.4, §3.8, §3.9).

use std::collections::HashMap;

use crate::resnet::RESNET_DIM;
use crate::vqvae::VqVaeConfig;
use crate::{bail, Error, Result};

/// Sparse attention's block of tokens and its local window (VideoGPT's hard-coded defaults).
const SPARSE_BLOCK: usize = 32;
const SPARSE_LOCAL_BLOCKS: usize = 4;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttnType {
    Full,
    Sparse,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GptConfig {
    pub hidden_dim: usize,
    pub heads: usize,
    pub layers: usize,
    pub attn_type: AttnType,
    /// 0 for an unconditional model.
    pub class_cond_dim: usize,
    /// T'×H'×W' of the token grid (the VQ-VAE's latent shape).
    pub latent: [usize; 3],
    pub n_codes: usize,
    pub embedding_dim: usize,
    /// Frames the prior is conditioned on (0: none; VideoGPT's BAIR model uses 1).
    pub n_cond_frames: usize,
    /// The VQ-VAE's frame size: conditioning frames are this size, their features a quarter.
    pub resolution: usize,
}

impl GptConfig {
    /// VideoGPT's default prior over `vq`'s codes: 576 wide, 4 heads, 8 layers, sparse attention,
    /// unconditioned (what the benchmarks and the GPU budgets measure at full width).
    pub fn videogpt_default(vq: &VqVaeConfig) -> Self {
        GptConfig {
            hidden_dim: 576,
            heads: 4,
            layers: 8,
            attn_type: AttnType::Sparse,
            class_cond_dim: 0,
            latent: vq.latent_shape(),
            n_codes: vq.n_codes,
            embedding_dim: vq.embedding_dim,
            n_cond_frames: 0,
            resolution: vq.resolution,
        }
    }

    pub fn from_metadata(meta: &HashMap<String, String>, vqvae: &VqVaeConfig) -> Result<Self> {
        let get = |k: &str| meta.get(k).ok_or_else(|| Error::Weights(format!("GPT metadata has no `{k}`")));
        let int = |k: &str| -> Result<usize> {
            let v = get(k)?;
            v.trim().parse().map_err(|_| Error::Weights(format!("GPT metadata `{k}` = {v:?} is not a whole number")))
        };
        let attn_type = match get("attn_type")?.as_str() {
            "full" => AttnType::Full,
            "sparse" => AttnType::Sparse,
            other => bail!(Weights, "GPT attn_type {other:?} is neither \"full\" nor \"sparse\""),
        };
        let c = GptConfig {
            hidden_dim: int("hidden_dim")?,
            heads: int("heads")?,
            layers: int("layers")?,
            attn_type,
            class_cond_dim: meta.get("class_cond_dim").map_or(Ok(0), |_| int("class_cond_dim"))?,
            latent: vqvae.latent_shape(),
            n_codes: vqvae.n_codes,
            embedding_dim: vqvae.embedding_dim,
            n_cond_frames: meta.get("n_cond_frames").map_or(Ok(0), |_| int("n_cond_frames"))?,
            resolution: vqvae.resolution,
        };
        let d = c.hidden_dim;
        if d == 0 || !d.is_multiple_of(3) || c.heads == 0 || !d.is_multiple_of(c.heads) || d > 1 << 14 {
            bail!(Weights, "hidden_dim {d} must be a positive multiple of 3 and of heads ({})", c.heads);
        }
        if c.layers > 256 || c.class_cond_dim > 1 << 16 {
            bail!(Weights, "GPT hparams out of range");
        }
        if c.attn_type == AttnType::Sparse {
            c.sparse_blocks_per_frame()?;
        }
        if c.n_cond_frames > 0 {
            if c.n_cond_frames > 64 || !c.resolution.is_multiple_of(4) {
                bail!(Weights, "{} conditioning frames of {}² are not supported (at most 64, a size divisible by 4)", c.n_cond_frames, c.resolution);
            }
            if !RESNET_DIM.is_multiple_of(c.heads) {
                bail!(Weights, "cross-attention splits the {RESNET_DIM} frame features into {} heads: it must divide {RESNET_DIM}", c.heads);
            }
        }
        Ok(c)
    }

    pub fn to_metadata(&self, vqvae: &VqVaeConfig) -> HashMap<String, String> {
        let mut m: HashMap<String, String> = [
            ("format", "videogpt-gpt".to_string()),
            ("hidden_dim", self.hidden_dim.to_string()),
            ("heads", self.heads.to_string()),
            ("layers", self.layers.to_string()),
            ("attn_type", if self.attn_type == AttnType::Full { "full" } else { "sparse" }.to_string()),
            ("class_cond_dim", self.class_cond_dim.to_string()),
            ("n_cond_frames", self.n_cond_frames.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in vqvae.to_metadata() {
            if k != "format" {
                m.insert(format!("vqvae.{k}"), v);
            }
        }
        m
    }

    /// Every GPT key of VideoGPT's state_dict (without the `vqvae.` copy) with its shape.
    pub fn state_dict_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (d, e, k, c) = (self.hidden_dim, self.embedding_dim, self.n_codes, self.class_cond_dim);
        let mut keys = vec![("fc_in.weight".to_string(), vec![d, e]), ("attn_stack.right_shift.sos".into(), vec![d])];
        for (i, &n) in self.latent.iter().enumerate() {
            keys.push((format!("attn_stack.pos_embd.emb.d_{i}"), vec![n, d / 3]));
        }
        let norm = |keys: &mut Vec<(String, Vec<usize>)>, key: &str| {
            if c > 0 {
                keys.push((format!("{key}.w.weight"), vec![d, c]));
                keys.push((format!("{key}.wb.weight"), vec![d, c]));
            } else {
                keys.push((format!("{key}.g"), vec![d]));
                keys.push((format!("{key}.b"), vec![d]));
            }
        };
        for l in 0..self.layers {
            let p = format!("attn_stack.attn_nets.{l}");
            norm(&mut keys, &format!("{p}.pre_attn_norm"));
            for w in ["w_qs", "w_ks", "w_vs", "fc"] {
                keys.push((format!("{p}.attn.{w}.weight"), vec![d, d]));
            }
            keys.push((format!("{p}.attn.fc.bias"), vec![d]));
            if self.n_cond_frames > 0 {
                norm(&mut keys, &format!("{p}.pre_enc_norm"));
                keys.push((format!("{p}.enc_attn.w_qs.weight"), vec![d, d]));
                keys.push((format!("{p}.enc_attn.w_ks.weight"), vec![d, RESNET_DIM]));
                keys.push((format!("{p}.enc_attn.w_vs.weight"), vec![RESNET_DIM, RESNET_DIM]));
                keys.push((format!("{p}.enc_attn.fc.weight"), vec![d, RESNET_DIM]));
                keys.push((format!("{p}.enc_attn.fc.bias"), vec![d]));
            }
            norm(&mut keys, &format!("{p}.pre_fc_norm"));
            keys.push((format!("{p}.fc_block.0.weight"), vec![4 * d, d]));
            keys.push((format!("{p}.fc_block.0.bias"), vec![4 * d]));
            keys.push((format!("{p}.fc_block.2.weight"), vec![d, 4 * d]));
            keys.push((format!("{p}.fc_block.2.bias"), vec![d]));
        }
        norm(&mut keys, "norm");
        keys.push(("fc_out.weight".into(), vec![k, d]));
        if self.n_cond_frames > 0 {
            keys.extend(crate::resnet::state_dict_shapes());
            for (i, n) in self.cond_shape().into_iter().enumerate() {
                keys.push((format!("cond_pos_embd.emb.d_{i}"), vec![n, RESNET_DIM / 3]));
            }
        }
        keys
    }

    /// The GPT's parameters (its VQ-VAE not included; buffers such as a full-attention mask are
    /// not parameters): the sum over its state_dict.
    pub fn parameter_count(&self) -> usize {
        self.state_dict_shapes().iter().map(|(_, shape)| shape.iter().product::<usize>()).sum()
    }

    /// n_cond × res/4 × res/4: the grid of frame features the cross-attention reads.
    pub fn cond_shape(&self) -> [usize; 3] {
        [self.n_cond_frames, self.resolution / 4, self.resolution / 4]
    }

    /// Tokens per clip, T'·H'·W'.
    pub fn positions(&self) -> usize {
        self.latent.iter().product()
    }

    /// StridedSparsityConfig's block grid: trailing latent dims are merged until their product
    /// exceeds a block; the last grid dim is the number of blocks per frame.
    pub fn sparse_blocks_per_frame(&self) -> Result<usize> {
        let mut cum = 1;
        for &d in self.latent.iter().rev() {
            cum *= d;
            if cum > SPARSE_BLOCK {
                break;
            }
        }
        if cum % SPARSE_BLOCK != 0 {
            bail!(Weights, "latent {:?} does not split into sparse-attention blocks of {SPARSE_BLOCK}", self.latent);
        }
        Ok(cum / SPARSE_BLOCK)
    }
}

/// May position `i` attend to position `j`: causal, and for sparse attention, within the 4
/// previous blocks or in the same block column of an earlier frame (spec §3.4).
pub(crate) fn attend(attn: AttnType, blocks_per_frame: usize, i: usize, j: usize) -> bool {
    if j > i {
        return false;
    }
    match attn {
        AttnType::Full => true,
        AttnType::Sparse => {
            let (r, c) = (i / SPARSE_BLOCK, j / SPARSE_BLOCK);
            r - c <= SPARSE_LOCAL_BLOCKS || c % blocks_per_frame == r % blocks_per_frame
        }
    }
}
