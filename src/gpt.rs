//! VideoGPT's prior (spec §3): a GPT over VQ-VAE codes in raster order. The input of a position is
//! the frozen codebook vector of its token through `fc_in` (no token table), right-shifted with a
//! learned SOS, plus concatenated time|height|width position embeddings; pre-LN blocks with
//! VideoGPT's LayerNorm (eps on the reciprocal square root), GeLU2 MLPs, and full or sparse causal
//! attention. Logits at position n predict token n.
//!
//! Conditioning: on a class (conditional LayerNorm gains and biases), and on frames (a ResNet-34
//! over the first frames, `src/resnet.rs`, read by cross-attention in every block).
//!
//! This is the CPU implementation (the reference for tests).

use std::collections::HashMap;

use crate::backend::{Backend, Volume};
use crate::cpu::sgemm;
use crate::resnet::{ResNet, RESNET_DIM};
use crate::vqvae::VqVaeConfig;
use crate::weights::WeightFile;
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
fn attend(attn: AttnType, blocks_per_frame: usize, i: usize, j: usize) -> bool {
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

/// VideoGPT's LayerNorm: `(x − μ)·(rsqrt(var) + 1e−5)·g + b`; class-conditional models have
/// `g = 1 + W_g·c`, `b = W_b·c` (spec §3.5–3.6).
pub(crate) struct Norm {
    g: Vec<f32>,
    b: Vec<f32>,
    /// `[D][n_classes]` weights of a class-conditional norm.
    class: Option<(Vec<f32>, Vec<f32>)>,
    classes: usize,
}

impl Norm {
    fn load(w: &mut WeightFile, key: &str, d: usize, classes: usize) -> Result<Self> {
        if classes > 0 {
            let wg = w.take(&format!("{key}.w.weight"), &[d, classes])?;
            let wb = w.take(&format!("{key}.wb.weight"), &[d, classes])?;
            Ok(Norm { g: vec![], b: vec![], class: Some((wg, wb)), classes })
        } else {
            Ok(Norm { g: w.take(&format!("{key}.g"), &[d])?, b: w.take(&format!("{key}.b"), &[d])?, class: None, classes })
        }
    }

    /// The gain and bias for a class (one-hot `c`: column `class` of W_g and W_b).
    pub(crate) fn affine(&self, class: Option<usize>) -> (Vec<f32>, Vec<f32>) {
        match (&self.class, class) {
            (Some((wg, wb)), Some(k)) => {
                let n = self.classes;
                (wg.iter().skip(k).step_by(n).map(|v| 1.0 + v).collect(), wb.iter().skip(k).step_by(n).copied().collect())
            }
            _ => (self.g.clone(), self.b.clone()),
        }
    }

    fn forward(&self, x: &[f32], d: usize, class: Option<usize>) -> Vec<f32> {
        let (g, b) = self.affine(class);
        let mut out = vec![0.0f32; x.len()];
        for (row, o) in x.chunks_exact(d).zip(out.chunks_exact_mut(d)) {
            let mu = row.iter().sum::<f32>() / d as f32;
            let var = row.iter().map(|v| (v - mu) * (v - mu)).sum::<f32>() / d as f32;
            let s = 1.0 / var.sqrt() + 1e-5;
            for i in 0..d {
                o[i] = (row[i] - mu) * s * g[i] + b[i];
            }
        }
        out
    }
}

pub(crate) struct Linear {
    /// `[out][in]`, PyTorch layout.
    pub(crate) weight: Vec<f32>,
    pub(crate) bias: Option<Vec<f32>>,
    pub(crate) d_in: usize,
    pub(crate) d_out: usize,
}

impl Linear {
    fn load(w: &mut WeightFile, key: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Self> {
        Ok(Linear {
            weight: w.take(&format!("{key}.weight"), &[d_out, d_in])?,
            bias: if bias { Some(w.take(&format!("{key}.bias"), &[d_out])?) } else { None },
            d_in,
            d_out,
        })
    }

    /// Rows of `x` (`[n][d_in]`) → `[n][d_out]`.
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let n = x.len() / self.d_in;
        let mut out = vec![0.0f32; n * self.d_out];
        if n == 1 {
            // one decoding step: a matrix-vector product, bound by reading the weights once; the
            // GEMM path's packing and thread hand-off cost more than the arithmetic here
            for (o, row) in out.iter_mut().zip(self.weight.chunks_exact(self.d_in)) {
                *o = dot(row, x);
            }
        } else {
            sgemm(n, self.d_in, self.d_out, x, self.d_in as isize, 1, &self.weight, 1, self.d_in as isize, 0.0, &mut out, self.d_out as isize, 1);
        }
        if let Some(b) = &self.bias {
            out.chunks_exact_mut(self.d_out).for_each(|r| r.iter_mut().zip(b).for_each(|(v, b)| *v += b));
        }
        out
    }
}

pub(crate) struct Block {
    pub(crate) pre_attn_norm: Norm,
    pub(crate) w_qs: Linear,
    pub(crate) w_ks: Linear,
    pub(crate) w_vs: Linear,
    pub(crate) fc: Linear,
    /// Cross-attention to the frame features (frame-conditioned models only).
    pub(crate) cross: Option<CrossAttention>,
    pub(crate) pre_fc_norm: Norm,
    pub(crate) fc1: Linear,
    pub(crate) fc2: Linear,
}

/// `enc_attn`: full attention from the tokens to the frame features. Keys are projected to D and
/// values to 240 (the features' width); the scale uses d_k = D / heads (spec §3.4).
pub(crate) struct CrossAttention {
    /// `pre_enc_norm`.
    pub(crate) norm: Norm,
    pub(crate) w_qs: Linear,
    pub(crate) w_ks: Linear,
    pub(crate) w_vs: Linear,
    pub(crate) fc: Linear,
}

/// The conditioning frames through the ResNet, with `cond_pos_embd` added: `[n_cond·r·r][240]`,
/// channel-last. Computed once per clip; every block projects it to its own keys and values.
#[derive(Clone, Debug)]
pub struct FrameFeatures(pub Vec<f32>);

/// The frame encoder and the position embedding of its output grid.
pub(crate) struct FrameEncoder {
    resnet: ResNet<crate::Cpu>,
    /// `[n_cond·r·r][240]`: concat(d_0[t], d_1[h], d_2[w]).
    pos: Vec<f32>,
}

/// Dot product with 8 independent partial sums, which the compiler vectorises.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Softmax of one head's `scores` (masked ones −∞) in place, then `out += Σ_j p_j · v_j`, the
/// value rows `v[j·stride + offset ..][..out.len()]`.
fn softmax_mix(scores: &mut [f32], max: f32, v: &[f32], stride: usize, offset: usize, out: &mut [f32]) {
    let mut sum = 0.0f32;
    scores.iter_mut().for_each(|s| {
        *s = (*s - max).exp();
        sum += *s;
    });
    let n = out.len();
    for (j, s) in scores.iter().enumerate() {
        let p = s / sum;
        out.iter_mut().zip(&v[j * stride + offset..][..n]).for_each(|(o, v)| *o += p * v);
    }
}

fn gelu2(x: f32) -> f32 {
    x * (1.0 / (1.0 + (-1.702 * x).exp()))
}

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

/// How tokens are drawn from the logits.
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// Logits are divided by this before the softmax (1: VideoGPT's own sampling).
    pub temperature: f32,
    /// Keep only the k most likely tokens (None: all, as VideoGPT does).
    pub top_k: Option<usize>,
    pub seed: u64,
    pub class: Option<usize>,
    /// The conditioning frames' features, for frame-conditioned models ([`Gpt::frame_features`]).
    pub frames: Option<FrameFeatures>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions { temperature: 1.0, top_k: None, seed: 0, class: None, frames: None }
    }
}

/// Draw one token from `logits` (temperature, then top-k, then the softmax); ties in top-k keep
/// the lower index.
pub fn draw(logits: &[f32], opts: &SampleOptions, rng: &mut crate::rng::SplitMix64) -> u32 {
    let t = opts.temperature as f64;
    let mut order: Vec<usize> = (0..logits.len()).collect();
    let k = opts.top_k.unwrap_or(logits.len()).clamp(1, logits.len());
    if k < logits.len() {
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
        order.truncate(k);
        order.sort_unstable();
    }
    let max = order.iter().map(|&i| logits[i] as f64 / t).fold(f64::NEG_INFINITY, f64::max);
    let weights: Vec<f64> = order.iter().map(|&i| (logits[i] as f64 / t - max).exp()).collect();
    let mut u = rng.next_f64() * weights.iter().sum::<f64>();
    for (&i, w) in order.iter().zip(&weights) {
        if u < *w {
            return i as u32;
        }
        u -= w;
    }
    *order.last().expect("at least one token") as u32
}

/// Per-layer keys and values of the positions decoded so far.
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// Positions filled.
    pub len: usize,
    class: Option<usize>,
    /// Per layer, the cross-attention's keys `[M][D]` and values `[M][240]` of the frame features.
    cross: Vec<(Vec<f32>, Vec<f32>)>,
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
            (n, None) => bail!(Input, "this GPT is conditioned on {n} frame(s): give them (--cond-frame)"),
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
    fn cross_attend(&self, b: &Block, x: &mut [f32], kv: Option<&(Vec<f32>, Vec<f32>)>, class: Option<usize>) {
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
                softmax_mix(&mut scores, max, v, RESNET_DIM, h * dv, &mut out[r * RESNET_DIM + h * dv..][..dv]);
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
        if let Some(&c) = codes.iter().find(|&&c| c as usize >= self.config.n_codes) {
            bail!(Input, "token {c} is out of range for {} codes", self.config.n_codes);
        }
        Ok(())
    }

    /// The GPT input of each position: `fc_in(codebook[token])`.
    fn embed(&self, codes: &[u32]) -> Vec<f32> {
        let e = self.config.embedding_dim;
        let x: Vec<f32> = codes.iter().flat_map(|&c| self.codebook[c as usize * e..(c as usize + 1) * e].iter().copied()).collect();
        self.fc_in.forward(&x)
    }

    fn mlp(&self, b: &Block, x: &mut [f32], class: Option<usize>) {
        let d = self.config.hidden_dim;
        let mut h = b.fc1.forward(&b.pre_fc_norm.forward(x, d, class));
        h.iter_mut().for_each(|v| *v = gelu2(*v));
        x.iter_mut().zip(b.fc2.forward(&h)).for_each(|(x, y)| *x += y);
    }

    /// Attention of the queries `q` (`[m][D]`, at positions `first..first + m`) over keys and
    /// values `[≥ first + m][D]`, masked by the model's attention pattern.
    fn attend_rows(&self, q: &[f32], k: &[f32], v: &[f32], first: usize) -> Vec<f32> {
        let (d, heads) = (self.config.hidden_dim, self.config.heads);
        let dk = d / heads;
        let scale = (dk as f32).sqrt();
        let m = q.len() / d;
        let mut out = vec![0.0f32; m * d];
        let mut scores = Vec::new();
        for r in 0..m {
            let i = first + r;
            for h in 0..heads {
                let qi = &q[r * d + h * dk..][..dk];
                scores.clear();
                let mut max = f32::NEG_INFINITY;
                for j in 0..=i {
                    let s = if attend(self.config.attn_type, self.blocks_per_frame, i, j) {
                        dot(qi, &k[j * d + h * dk..][..dk]) / scale
                    } else {
                        f32::NEG_INFINITY
                    };
                    max = max.max(s);
                    scores.push(s);
                }
                softmax_mix(&mut scores, max, v, d, h * dk, &mut out[r * d + h * dk..][..dk]);
            }
        }
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
        let emb = self.embed(codes);
        // right shift: SOS first, every input moves one position later
        let mut x = Vec::with_capacity(n * d);
        x.extend_from_slice(&self.sos);
        x.extend_from_slice(&emb[..(n - 1) * d]);
        x.iter_mut().zip(&self.pos).for_each(|(x, p)| *x += p);
        for (l, b) in self.blocks.iter().enumerate() {
            let h = b.pre_attn_norm.forward(&x, d, class);
            let (q, k, v) = (b.w_qs.forward(&h), b.w_ks.forward(&h), b.w_vs.forward(&h));
            let a = b.fc.forward(&self.attend_rows(&q, &k, &v, 0));
            x.iter_mut().zip(a).for_each(|(x, a)| *x += a);
            self.cross_attend(b, &mut x, cross.get(l), class);
            self.mlp(b, &mut x, class);
        }
        Ok(self.fc_out.forward(&self.norm.forward(&x, d, class)))
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

    pub fn new_cache(&self, class: Option<usize>) -> Result<KvCache> {
        self.new_cache_with(class, None)
    }

    /// A cache for decoding with conditioning frames: their keys and values are computed once.
    pub fn new_cache_with(&self, class: Option<usize>, frames: Option<&FrameFeatures>) -> Result<KvCache> {
        self.check_class(class)?;
        self.check_frames(frames)?;
        let n = self.config.layers;
        Ok(KvCache { k: vec![Vec::new(); n], v: vec![Vec::new(); n], len: 0, class, cross: self.cross_kv(frames) })
    }

    /// Sample a token grid in raster order with the KV cache. The first `prefix.len()` tokens
    /// are given (prefix continuation: the tokens of a real clip's first latent frames) and fed
    /// through the cache; the rest are drawn. `on_token(position, grid_so_far)` is called after
    /// every drawn token, so a caller can show progress or decode the grid as it grows.
    pub fn sample(&self, opts: &SampleOptions, prefix: &[u32], mut on_token: impl FnMut(usize, &[u32])) -> Result<Vec<u32>> {
        let n = self.config.positions();
        self.check_sample(opts, prefix)?;
        let mut rng = crate::rng::SplitMix64::new(opts.seed);
        let mut cache = self.new_cache_with(opts.class, opts.frames.as_ref())?;
        let mut grid: Vec<u32> = Vec::with_capacity(n);
        for i in 0..n {
            let logits = self.step(&mut cache, grid.last().copied())?;
            if i < prefix.len() {
                grid.push(prefix[i]);
            } else {
                grid.push(draw(&logits, opts, &mut rng));
                on_token(i, &grid);
            }
        }
        Ok(grid)
    }

    /// One decoding step: feed the token at position `cache.len − 1` (none at step 0, where SOS
    /// stands in) and get the logits `[K]` for position `cache.len`.
    pub fn step(&self, cache: &mut KvCache, previous: Option<u32>) -> Result<Vec<f32>> {
        let (d, i) = (self.config.hidden_dim, cache.len);
        if i >= self.config.positions() {
            bail!(Input, "the grid is full ({i} tokens)");
        }
        let mut x = match (i, previous) {
            (0, _) => self.sos.clone(),
            (_, Some(t)) => {
                self.check_codes(&[t])?;
                self.embed(&[t])
            }
            (_, None) => bail!(Input, "step {i} needs the previous token"),
        };
        x.iter_mut().zip(&self.pos[i * d..(i + 1) * d]).for_each(|(x, p)| *x += p);
        let class = cache.class;
        for (l, b) in self.blocks.iter().enumerate() {
            let h = b.pre_attn_norm.forward(&x, d, class);
            cache.k[l].extend(b.w_ks.forward(&h));
            cache.v[l].extend(b.w_vs.forward(&h));
            let a = b.fc.forward(&self.attend_rows(&b.w_qs.forward(&h), &cache.k[l], &cache.v[l], i));
            x.iter_mut().zip(a).for_each(|(x, a)| *x += a);
            self.cross_attend(b, &mut x, cache.cross.get(l), class);
            self.mlp(b, &mut x, class);
        }
        cache.len += 1;
        Ok(self.fc_out.forward(&self.norm.forward(&x, d, class)))
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

/// A `.safetensors` GPT with random weights (N(0, 1/fan_in)-scaled, norms near identity) for
/// `config` over the VQ-VAE `vqvae`, for benchmarks and tests of sizes no fixture has.
pub fn random_weights(config: &GptConfig, vqvae: &VqVaeConfig, seed: u64) -> Vec<u8> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let tensors: Vec<_> = config
        .state_dict_shapes()
        .into_iter()
        .map(|(key, shape)| {
            let n: usize = shape.iter().product();
            // inputs per output: the row of a linear layer, in·k³ of a convolution
            let fan_in = if shape.len() > 1 { shape[1..].iter().product::<usize>() } else { shape[0] } as f32;
            let values = if key.ends_with(".g") || key.ends_with("norm.norm.weight") {
                vec![1.0; n]
            } else if key.ends_with(".b") || key.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let bound = (3.0 / fan_in).sqrt();
                (0..n).map(|_| bound * (2.0 * rng.next_f32() - 1.0)).collect()
            };
            (key, safetensors::Dtype::F32, shape, bytemuck::cast_slice(&values).to_vec())
        })
        .collect();
    crate::weights::to_safetensors(&tensors, config.to_metadata(vqvae))
}
