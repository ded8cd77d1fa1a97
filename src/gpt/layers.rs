//! The prior's layers on the CPU, in inference form: VideoGPT's LayerNorm, linear layers over
//! row vectors, a block's weights, cross-attention to frame features, and the small kernels
//! (GeLU2 here; dot products and softmax-and-mix are the CPU path's, `crate::cpu`) the model file
//! composes (spec §3.3–3.6).

use crate::cpu::{gemv, gemv_f16, gemv_portable, sgemm, Arithmetic};
use crate::resnet::ResNet;
use crate::weights::WeightFile;
use crate::Result;

/// VideoGPT's LayerNorm: `(x − μ)·(rsqrt(var) + 1e−5)·g + b`; class-conditional models have
/// `g = 1 + W_g·c`, `b = W_b·c` (spec §3.5–3.6).
pub(crate) struct Norm {
    pub(crate) g: Vec<f32>,
    pub(crate) b: Vec<f32>,
    /// `[D][n_classes]` weights of a class-conditional norm.
    pub(crate) class: Option<(Vec<f32>, Vec<f32>)>,
    pub(crate) classes: usize,
}

impl Norm {
    pub(crate) fn load(w: &mut WeightFile, key: &str, d: usize, classes: usize) -> Result<Self> {
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

    pub(crate) fn forward(&self, x: &[f32], d: usize, class: Option<usize>) -> Vec<f32> {
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
    /// The same weights as f16 when the file stores them so (exactly the same values): a
    /// decoding step reads every weight once, and half the bytes is most of its time.
    pub(crate) weight_f16: Option<Vec<half::f16>>,
    /// Whether the file stores the weights as f16 (the GPU path keeps them so too; on wasm
    /// `weight_f16` is None whatever the file holds).
    pub(crate) stored_f16: bool,
    pub(crate) bias: Option<Vec<f32>>,
    pub(crate) d_in: usize,
    pub(crate) d_out: usize,
}

impl Linear {
    pub(crate) fn load(w: &mut WeightFile, key: &str, d_in: usize, d_out: usize, bias: bool) -> Result<Self> {
        let stored_f16 = w.is_f16(&format!("{key}.weight"));
        let weight = w.take(&format!("{key}.weight"), &[d_out, d_in])?;
        // the browser's CPU path has no f16 vector loads; there the f32 copy is read
        let weight_f16 = (stored_f16 && !cfg!(target_arch = "wasm32")).then(|| weight.iter().map(|&v| half::f16::from_f32(v)).collect());
        Ok(Linear { weight, weight_f16, stored_f16, bias: if bias { Some(w.take(&format!("{key}.bias"), &[d_out])?) } else { None }, d_in, d_out })
    }

    /// Rows of `x` (`[n][d_in]`) → `[n][d_out]`.
    pub(crate) fn forward(&self, x: &[f32]) -> Vec<f32> {
        self.forward_in(x, Arithmetic::Fastest)
    }

    /// [`Linear::forward`] in the given arithmetic; `Portable` reads the f32 copy of the weights
    /// (the same values as the f16 ones) through the plain-Rust dot product.
    pub(crate) fn forward_in(&self, x: &[f32], arithmetic: Arithmetic) -> Vec<f32> {
        let n = x.len() / self.d_in;
        let mut out = vec![0.0f32; n * self.d_out];
        if arithmetic == Arithmetic::Portable {
            x.chunks_exact(self.d_in).zip(out.chunks_exact_mut(self.d_out)).for_each(|(x, o)| gemv_portable(&self.weight, x, o));
        } else if n == 1 {
            // one decoding step: a matrix-vector product, bound by reading the weights once; the
            // GEMM path's packing costs more than the arithmetic here
            match &self.weight_f16 {
                Some(w) => gemv_f16(w, x, &mut out),
                None => gemv(&self.weight, x, &mut out),
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
    pub(crate) resnet: ResNet<crate::Cpu>,
    /// `[n_cond·r·r][240]`: concat(d_0[t], d_1[h], d_2[w]).
    pub(crate) pos: Vec<f32>,
}

pub(crate) use crate::cpu::{dot, softmax_mix};

pub(crate) fn gelu2(x: f32, arithmetic: Arithmetic) -> f32 {
    x * (1.0 / (1.0 + arithmetic.exp(-1.702 * x)))
}
