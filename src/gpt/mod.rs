//! VideoGPT's prior (spec §3): a GPT over VQ-VAE codes in raster order. The input of a position is
//! the frozen codebook vector of its token through `fc_in` (no token table), right-shifted with a
//! learned SOS, plus concatenated time|height|width position embeddings; pre-LN blocks with
//! VideoGPT's LayerNorm (eps on the reciprocal square root), GeLU2 MLPs, and full or sparse causal
//! attention. Logits at position n predict token n.
//!
//! Paper: <https://arxiv.org/abs/2104.10157>. Follows `videogpt/gpt.py` and `videogpt/attention.py`
//! of <https://github.com/wilson1yan/VideoGPT>; `spec §N` is docs/videogpt-spec.md.
//!
//! Conditioning: on a class (conditional LayerNorm gains and biases), and on frames (a ResNet-34
//! over the first frames, `src/resnet.rs`, read by cross-attention in every block).
//!
//! This is the CPU implementation (the reference for tests).

use std::collections::HashMap;

use crate::backend::{Backend, Volume};
use crate::cpu::Arithmetic;
use crate::resnet::{ResNet, RESNET_DIM};
use crate::vqvae::VqVaeConfig;
use crate::weights::WeightFile;
use crate::{bail, Result};

mod blocks;
mod config;
mod layers;
mod random;
mod sample;

pub(crate) use blocks::Sublayers;
pub(crate) use config::attend;
pub use config::{AttnType, GptConfig};
pub use layers::FrameFeatures;
pub(crate) use layers::*;
pub use random::random_weights;
pub use sample::{draw, KvCache, SampleOptions};

pub struct Gpt {
    pub config: GptConfig,
    /// Codebook vectors `[K][E]`: the GPT's input is `fc_in(embeddings[token])`.
    pub(crate) codebook: Vec<f32>,
    pub(crate) fc_in: Linear,
    pub(crate) sos: Vec<f32>,
    /// `[N][D]`: concat(d_0[t], d_1[h], d_2[w]).
    pub(crate) pos: Vec<f32>,
    pub(crate) blocks: Vec<Block>,
    pub(crate) norm: Norm,
    pub(crate) fc_out: Linear,
    pub(crate) blocks_per_frame: usize,
    pub(crate) frame_encoder: Option<FrameEncoder>,
}

impl Gpt {
    /// Load a GPT checkpoint. The VQ-VAE's codebook comes from `vqvae.*` keys in the same file
    /// (VideoGPT's own layout), or from a separate VQ-VAE file when `vqvae_bytes` is given.
    pub fn load(bytes: &[u8], vqvae_bytes: Option<&[u8]>) -> Result<Self> {
        let mut w = WeightFile::parse(bytes)?;
        let gpt_meta = w.metadata().clone();
        if gpt_meta.get("format").is_some_and(|f| f != "videogpt-gpt") {
            bail!(Weights, "not a VideoGPT GPT file (format {:?})", gpt_meta["format"]);
        }
        let (vq_config, codebook) = match vqvae_bytes {
            Some(vb) => {
                let mut vw = WeightFile::parse(vb)?;
                let vc = VqVaeConfig::from_metadata(vw.metadata())?;
                let cb = vw.take("codebook.embeddings", &[vc.n_codes, vc.embedding_dim])?;
                (vc, cb)
            }
            None => {
                let vq_meta: HashMap<String, String> =
                    gpt_meta.iter().filter_map(|(k, v)| k.strip_prefix("vqvae.").map(|k| (k.to_string(), v.clone()))).collect();
                if !w.contains("vqvae.codebook.embeddings") {
                    bail!(Weights, "the GPT file holds no VQ-VAE (`vqvae.*` keys); pass the VQ-VAE file separately");
                }
                let vc = VqVaeConfig::from_metadata(&vq_meta)?;
                let cb = w.take("vqvae.codebook.embeddings", &[vc.n_codes, vc.embedding_dim])?;
                (vc, cb)
            }
        };
        if let Some(v) = gpt_meta.get("vqvae.n_codes") {
            if v.trim() != vq_config.n_codes.to_string() {
                bail!(Weights, "the GPT was trained over {v} codes but the VQ-VAE has {}", vq_config.n_codes);
            }
        }
        let config = GptConfig::from_metadata(&gpt_meta, &vq_config)?;
        let (d, e, k, n, classes) = (config.hidden_dim, config.embedding_dim, config.n_codes, config.positions(), config.class_cond_dim);
        let pos = broadcast_position_table(&mut w, "attn_stack.pos_embd", config.latent, d)?;
        let blocks = (0..config.layers)
            .map(|l| {
                let key = |s: &str| format!("attn_stack.attn_nets.{l}.{s}");
                // full-attention checkpoints carry the causal mask as a buffer; it is recomputed
                w.skip(&key("attn.attn.mask"), &[n, n])?;
                Ok(Block {
                    pre_attn_norm: Norm::load(&mut w, &key("pre_attn_norm"), d, classes)?,
                    w_qs: Linear::load(&mut w, &key("attn.w_qs"), d, d, false)?,
                    w_ks: Linear::load(&mut w, &key("attn.w_ks"), d, d, false)?,
                    w_vs: Linear::load(&mut w, &key("attn.w_vs"), d, d, false)?,
                    fc: Linear::load(&mut w, &key("attn.fc"), d, d, true)?,
                    cross: if config.n_cond_frames > 0 {
                        Some(CrossAttention {
                            norm: Norm::load(&mut w, &key("pre_enc_norm"), d, classes)?,
                            w_qs: Linear::load(&mut w, &key("enc_attn.w_qs"), d, d, false)?,
                            w_ks: Linear::load(&mut w, &key("enc_attn.w_ks"), RESNET_DIM, d, false)?,
                            w_vs: Linear::load(&mut w, &key("enc_attn.w_vs"), RESNET_DIM, RESNET_DIM, false)?,
                            fc: Linear::load(&mut w, &key("enc_attn.fc"), RESNET_DIM, d, true)?,
                        })
                    } else {
                        None
                    },
                    pre_fc_norm: Norm::load(&mut w, &key("pre_fc_norm"), d, classes)?,
                    fc1: Linear::load(&mut w, &key("fc_block.0"), d, 4 * d, true)?,
                    fc2: Linear::load(&mut w, &key("fc_block.2"), 4 * d, d, true)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let gpt = Gpt {
            codebook,
            fc_in: Linear::load(&mut w, "fc_in", e, d, false)?,
            sos: w.take("attn_stack.right_shift.sos", &[d])?,
            pos,
            blocks,
            norm: Norm::load(&mut w, "norm", d, classes)?,
            fc_out: Linear::load(&mut w, "fc_out", d, k, false)?,
            blocks_per_frame: if config.attn_type == AttnType::Sparse { config.sparse_blocks_per_frame()? } else { 1 },
            frame_encoder: if config.n_cond_frames > 0 {
                Some(FrameEncoder {
                    resnet: ResNet::load(&crate::Cpu, &mut w)?,
                    pos: broadcast_position_table(&mut w, "cond_pos_embd", config.cond_shape(), RESNET_DIM)?,
                })
            } else {
                None
            },
            config,
        };
        // every GPT key must have been used; the VQ-VAE copy is the VQ-VAE loader's business
        w.finish_except("vqvae.")?;
        Ok(gpt)
    }

    pub(crate) fn check_class(&self, class: Option<usize>) -> Result<()> {
        match (self.config.class_cond_dim, class) {
            (0, None) => Ok(()),
            (0, Some(_)) => bail!(Input, "this GPT is unconditional; it takes no class"),
            (n, None) => bail!(Input, "this GPT is class-conditional: give a class in 0..{n}"),
            (n, Some(c)) if c >= n => bail!(Input, "class {c} is out of range 0..{n}"),
            _ => Ok(()),
        }
    }

    pub(crate) fn check_frames(&self, frames: Option<&FrameFeatures>) -> Result<()> {
        let m: usize = self.config.cond_shape().iter().product();
        match (self.config.n_cond_frames, frames) {
            (0, None) => Ok(()),
            (0, Some(_)) => bail!(Input, "this GPT is not frame-conditioned; it takes no conditioning frames"),
            (n, None) => bail!(Input, "this GPT is conditioned on {n} frame(s); none were given"),
            (_, Some(f)) if f.0.len() != m * RESNET_DIM => bail!(Input, "frame features of {} values do not fit this GPT's {m}×{RESNET_DIM}", f.0.len()),
            _ => Ok(()),
        }
    }

    /// Conditioning frames (3×n_cond×res×res, preprocessed) through the ResNet, plus the
    /// features' position embedding.
    pub fn frame_features(&self, frames: &Volume) -> Result<FrameFeatures> {
        let Some(enc) = &self.frame_encoder else {
            bail!(Input, "this GPT is not frame-conditioned; it takes no conditioning frames");
        };
        let c = &self.config;
        let want = crate::Dims::new(3, c.n_cond_frames, c.resolution, c.resolution);
        if frames.dims != want {
            bail!(Input, "conditioning frames must be 3×{}×{}×{} (preprocessed), got {:?}", c.n_cond_frames, c.resolution, c.resolution, frames.dims);
        }
        let cpu = crate::Cpu;
        let f = enc.resnet.forward(&cpu, &cpu.upload_volume(frames)?)?;
        let m = f.dims.positions();
        // channel-first → channel-last, plus the position of each feature
        let mut out = enc.pos.clone();
        for ch in 0..RESNET_DIM {
            for p in 0..m {
                out[p * RESNET_DIM + ch] += f.buf[ch * m + p];
            }
        }
        Ok(FrameFeatures(out))
    }

    /// Per layer, the cross-attention keys and values of the frame features.
    pub(crate) fn cross_kv(&self, frames: Option<&FrameFeatures>) -> Vec<(Vec<f32>, Vec<f32>)> {
        match frames {
            Some(f) => self.blocks.iter().filter_map(|b| b.cross.as_ref().map(|c| (c.w_ks.forward(&f.0), c.w_vs.forward(&f.0)))).collect(),
            None => Vec::new(),
        }
    }

    /// `x += fc(attention(norm(x)·W_q, K, V))` over all frame features (no mask).
    pub(crate) fn cross_attend(&self, b: &Block, x: &mut [f32], kv: Option<&(Vec<f32>, Vec<f32>)>, class: Option<usize>) {
        let (Some(c), Some((k, v))) = (&b.cross, kv) else { return };
        let (d, heads) = (self.config.hidden_dim, self.config.heads);
        let (dk, dv) = (d / heads, RESNET_DIM / heads);
        let scale = (dk as f32).sqrt();
        let q = c.w_qs.forward(&c.norm.forward(x, d, class));
        let (rows, m) = (q.len() / d, k.len() / d);
        let mut out = vec![0.0f32; rows * RESNET_DIM];
        let mut scores = vec![0.0f32; m];
        for r in 0..rows {
            for h in 0..heads {
                let qi = &q[r * d + h * dk..][..dk];
                let mut max = f32::NEG_INFINITY;
                for (j, s) in scores.iter_mut().enumerate() {
                    *s = dot(qi, &k[j * d + h * dk..][..dk]) / scale;
                    max = max.max(*s);
                }
                let values = (0..m).map(|j| &v[j * RESNET_DIM + h * dv..][..dv]);
                softmax_mix(&mut scores, max, values, &mut out[r * RESNET_DIM + h * dv..][..dv], Arithmetic::Fastest);
            }
        }
        x.iter_mut().zip(c.fc.forward(&out)).for_each(|(x, a)| *x += a);
    }

    /// Sampling options and prefix that fit this model (shared by the CPU and GPU samplers).
    pub(crate) fn check_sample(&self, opts: &SampleOptions, prefix: &[u32]) -> Result<()> {
        let n = self.config.positions();
        if prefix.len() > n {
            bail!(Input, "a prefix of {} tokens is longer than the grid ({n})", prefix.len());
        }
        if !(opts.temperature.is_finite() && opts.temperature > 0.0) {
            bail!(Input, "temperature must be positive, got {}", opts.temperature);
        }
        if opts.top_k == Some(0) {
            bail!(Input, "top-k must be at least 1");
        }
        self.check_class(opts.class)?;
        self.check_frames(opts.frames.as_ref())?;
        self.check_codes(prefix)
    }

    pub(crate) fn check_codes(&self, codes: &[u32]) -> Result<()> {
        crate::tokens::check_range(codes, self.config.n_codes)
    }

    /// The GPT input of each position: `fc_in(codebook[token])`.
    fn embed(&self, codes: &[u32], arithmetic: Arithmetic) -> Vec<f32> {
        let e = self.config.embedding_dim;
        let x: Vec<f32> = codes.iter().flat_map(|&c| self.codebook[c as usize * e..(c as usize + 1) * e].iter().copied()).collect();
        self.fc_in.forward_in(&x, arithmetic)
    }

    pub(crate) fn mlp(&self, b: &Block, x: &mut [f32], class: Option<usize>, arithmetic: Arithmetic) {
        let d = self.config.hidden_dim;
        let mut h = b.fc1.forward_in(&b.pre_fc_norm.forward(x, d, class), arithmetic);
        h.iter_mut().for_each(|v| *v = gelu2(*v, arithmetic));
        x.iter_mut().zip(b.fc2.forward_in(&h, arithmetic)).for_each(|(x, y)| *x += y);
    }

    /// Attention of the queries `q` (`[m][D]`, at positions `first..first + m`) over keys and
    /// values `[≥ first + m][D]`, masked by the model's attention pattern.
    pub(crate) fn attend_rows(&self, q: &[f32], k: &[f32], v: &[f32], first: usize, arithmetic: Arithmetic) -> Vec<f32> {
        let (d, heads) = (self.config.hidden_dim, self.config.heads);
        let dk = d / heads;
        let scale = (dk as f32).sqrt();
        let m = q.len() / d;
        let mut out = vec![0.0f32; m * d];
        // one unit per (row, head), over the cores; masked positions are skipped, which sums
        // the same as giving them −∞ (their weights would be exactly 0)
        let work = (first + m) * d * 2;
        let pace = if m == 1 { crate::cpu::Pace::Short } else { crate::cpu::Pace::Long };
        crate::cpu::parallel_rows_paced(pace, &mut out, dk, work / heads, 1 << 16, |u0, part| {
            let (mut keys, mut scores) = (Vec::new(), Vec::new());
            for (du, o) in part.chunks_exact_mut(dk).enumerate() {
                let (r, h) = ((u0 + du) / heads, (u0 + du) % heads);
                let i = first + r;
                let qi = &q[r * d + h * dk..][..dk];
                keys.clear();
                keys.extend((0..=i).filter(|&j| attend(self.config.attn_type, self.blocks_per_frame, i, j)));
                scores.clear();
                scores.extend(keys.iter().map(|&j| dot(qi, &k[j * d + h * dk..][..dk]) / scale));
                let max = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
                softmax_mix(&mut scores, max, keys.iter().map(|&j| &v[j * d + h * dk..][..dk]), o, arithmetic);
            }
        });
        out
    }

    /// Teacher-forced logits of one token grid: `[N][K]`, row n predicting token n.
    pub fn logits(&self, codes: &[u32], class: Option<usize>) -> Result<Vec<f32>> {
        self.logits_with(codes, class, None)
    }

    /// [`Gpt::logits`] of a frame-conditioned model, given its conditioning frames' features.
    pub fn logits_with(&self, codes: &[u32], class: Option<usize>, frames: Option<&FrameFeatures>) -> Result<Vec<f32>> {
        let (d, n) = (self.config.hidden_dim, self.config.positions());
        if codes.len() != n {
            bail!(Input, "{} tokens given; this GPT models grids of {:?} = {n}", codes.len(), self.config.latent);
        }
        self.check_codes(codes)?;
        self.check_class(class)?;
        self.check_frames(frames)?;
        let cross = self.cross_kv(frames);
        let emb = self.embed(codes, Arithmetic::Fastest);
        // right shift: SOS first, every input moves one position later
        let mut x = Vec::with_capacity(n * d);
        x.extend_from_slice(&self.sos);
        x.extend_from_slice(&emb[..(n - 1) * d]);
        x.iter_mut().zip(&self.pos).for_each(|(x, p)| *x += p);
        let mut grid = Grid { gpt: self, x, class, cross };
        self.walk_blocks(&mut grid)?;
        Ok(self.fc_out.forward(&self.norm.forward(&grid.x, d, class)))
    }

    /// Negative log-likelihood of a grid under teacher forcing, in bits per token.
    pub fn bits_per_token(&self, codes: &[u32], class: Option<usize>) -> Result<f64> {
        self.bits_per_token_with(codes, class, None)
    }

    /// [`Gpt::bits_per_token`] of a frame-conditioned model.
    pub fn bits_per_token_with(&self, codes: &[u32], class: Option<usize>, frames: Option<&FrameFeatures>) -> Result<f64> {
        let logits = self.logits_with(codes, class, frames)?;
        let k = self.config.n_codes;
        let nll: f64 = logits
            .chunks_exact(k)
            .zip(codes)
            .map(|(row, &c)| {
                let max = row.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v)) as f64;
                let lse = max + row.iter().map(|&v| (v as f64 - max).exp()).sum::<f64>().ln();
                lse - row[c as usize] as f64
            })
            .sum();
        Ok(nll / codes.len() as f64 / std::f64::consts::LN_2)
    }
}

/// `AddBroadcastPosEmbed`'s table for a T×H×W grid of `dim` channels: concat(d_0[t], d_1[h],
/// d_2[w]) for every position in raster order.
fn broadcast_position_table(w: &mut WeightFile, key: &str, [lt, lh, lw]: [usize; 3], dim: usize) -> Result<Vec<f32>> {
    let third = dim / 3;
    let d0 = w.take(&format!("{key}.emb.d_0"), &[lt, third])?;
    let d1 = w.take(&format!("{key}.emb.d_1"), &[lh, third])?;
    let d2 = w.take(&format!("{key}.emb.d_2"), &[lw, third])?;
    let mut pos = Vec::with_capacity(lt * lh * lw * dim);
    for t in 0..lt {
        for h in 0..lh {
            for x in 0..lw {
                pos.extend_from_slice(&d0[t * third..(t + 1) * third]);
                pos.extend_from_slice(&d1[h * third..(h + 1) * third]);
                pos.extend_from_slice(&d2[x * third..(x + 1) * third]);
            }
        }
    }
    Ok(pos)
}

/// The parallel forward's residual stream: every position of a grid at once, self-attention
/// causally masked over the whole grid.
struct Grid<'a> {
    gpt: &'a Gpt,
    x: Vec<f32>,
    class: Option<usize>,
    cross: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Sublayers for Grid<'_> {
    fn self_attention(&mut self, layer: usize) -> Result<()> {
        let (g, b) = (self.gpt, &self.gpt.blocks[layer]);
        let h = b.pre_attn_norm.forward(&self.x, g.config.hidden_dim, self.class);
        let (q, k, v) = (b.w_qs.forward(&h), b.w_ks.forward(&h), b.w_vs.forward(&h));
        let a = b.fc.forward(&g.attend_rows(&q, &k, &v, 0, Arithmetic::Fastest));
        self.x.iter_mut().zip(a).for_each(|(x, a)| *x += a);
        Ok(())
    }
    fn cross_attention(&mut self, layer: usize) -> Result<()> {
        self.gpt.cross_attend(&self.gpt.blocks[layer], &mut self.x, self.cross.get(layer), self.class);
        Ok(())
    }
    fn mlp(&mut self, layer: usize) -> Result<()> {
        self.gpt.mlp(&self.gpt.blocks[layer], &mut self.x, self.class, Arithmetic::Fastest);
        Ok(())
    }
}
