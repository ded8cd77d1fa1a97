//! VideoGPT's layers in inference form: PyTorch weights as loaded, BatchNorm turned into a
//! per-channel affine and folded into the convolution before it where that is exact algebra.

use crate::backend::Backend;
pub use crate::backend::{AxialAttention, ChannelAffine, ChannelNorm, Codebook, Conv3d, ConvTranspose3d};
use crate::weights::WeightFile;
use crate::Result;

/// BatchNorm3d's eps (PyTorch default, used by VideoGPT).
const BN_EPS: f32 = 1e-5;

/// Host-side BatchNorm3d parameters as `(scale, shift)`.
pub fn batchnorm_affine(w: &mut WeightFile, key: &str, c: usize) -> Result<(Vec<f32>, Vec<f32>)> {
    let gamma = w.take(&format!("{key}.weight"), &[c])?;
    let beta = w.take(&format!("{key}.bias"), &[c])?;
    let mean = w.take(&format!("{key}.running_mean"), &[c])?;
    let var = w.take(&format!("{key}.running_var"), &[c])?;
    w.skip(&format!("{key}.num_batches_tracked"), &[])?;
    let scale: Vec<f32> = (0..c).map(|i| gamma[i] / (var[i] + BN_EPS).sqrt()).collect();
    let shift = (0..c).map(|i| beta[i] - mean[i] * scale[i]).collect();
    Ok((scale, shift))
}

pub fn load_batchnorm<B: Backend>(b: &B, w: &mut WeightFile, key: &str, c: usize) -> Result<ChannelAffine<B>> {
    let (scale, shift) = batchnorm_affine(w, key, c)?;
    Ok(ChannelAffine { channels: c, scale: b.upload(&scale)?, shift: b.upload(&shift)? })
}

/// Host-side weights of one `SamePadConv3d` (`key` is the module, e.g. `encoder.convs.0`).
pub struct HostConv {
    pub cin: usize,
    pub cout: usize,
    pub kernel: [usize; 3],
    pub stride: [usize; 3],
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl HostConv {
    pub fn load(w: &mut WeightFile, key: &str, cin: usize, cout: usize, k: usize, stride: [usize; 3], bias: bool) -> Result<Self> {
        let weight = w.take(&format!("{key}.conv.weight"), &[cout, cin, k, k, k])?;
        let bias = if bias { w.take(&format!("{key}.conv.bias"), &[cout])? } else { vec![0.0; cout] };
        Ok(HostConv { cin, cout, kernel: [k; 3], stride, weight, bias })
    }

    /// Fold a following BatchNorm: `bn(conv(x)) = conv'(x)` with rows scaled and a new bias.
    pub fn fold_batchnorm(mut self, (scale, shift): (Vec<f32>, Vec<f32>)) -> Self {
        let row = self.weight.len() / self.cout;
        for co in 0..self.cout {
            self.weight[co * row..(co + 1) * row].iter_mut().for_each(|v| *v *= scale[co]);
            self.bias[co] = self.bias[co] * scale[co] + shift[co];
        }
        self
    }

    pub fn upload<B: Backend>(&self, b: &B) -> Result<Conv3d<B>> {
        Ok(Conv3d { cin: self.cin, cout: self.cout, kernel: self.kernel, stride: self.stride, weight: b.upload(&self.weight)?, bias: b.upload(&self.bias)? })
    }
}

pub fn load_conv_transpose<B: Backend>(b: &B, w: &mut WeightFile, key: &str, cin: usize, cout: usize, stride: [usize; 3]) -> Result<ConvTranspose3d<B>> {
    let weight = w.take(&format!("{key}.convt.weight"), &[cin, cout, 4, 4, 4])?;
    let bias = w.take(&format!("{key}.convt.bias"), &[cout])?;
    Ok(ConvTranspose3d { cin, cout, stride, weight: b.upload_conv_transpose(&weight, cin, cout, stride)?, bias: b.upload(&bias)? })
}

pub fn load_axial_attention<B: Backend>(b: &B, w: &mut WeightFile, key: &str, c: usize) -> Result<AxialAttention<B>> {
    let mut qkv = Vec::with_capacity(9 * c * c);
    let mut fc = vec![0.0f32; c * 3 * c];
    let mut fc_bias = vec![0.0f32; c];
    for (a, axis) in ["attn_w", "attn_h", "attn_t"].into_iter().enumerate() {
        for proj in ["w_qs", "w_ks", "w_vs"] {
            qkv.extend(w.take(&format!("{key}.{axis}.{proj}.weight"), &[c, c])?);
        }
        let fw = w.take(&format!("{key}.{axis}.fc.weight"), &[c, c])?;
        for co in 0..c {
            fc[co * 3 * c + a * c..co * 3 * c + (a + 1) * c].copy_from_slice(&fw[co * c..(co + 1) * c]);
        }
        let fb = w.take(&format!("{key}.{axis}.fc.bias"), &[c])?;
        fc_bias.iter_mut().zip(fb).for_each(|(s, v)| *s += v);
    }
    let qkv = HostConv { cin: c, cout: 9 * c, kernel: [1; 3], stride: [1; 3], weight: qkv, bias: vec![0.0; 9 * c] };
    let out = HostConv { cin: 3 * c, cout: c, kernel: [1; 3], stride: [1; 3], weight: fc, bias: fc_bias };
    Ok(AxialAttention { channels: c, n_head: 2, qkv: qkv.upload(b)?, out: out.upload(b)? })
}

/// The codebook on the backend, and its embeddings on the host `[n_codes][dim]`.
pub fn load_codebook<B: Backend>(b: &B, w: &mut WeightFile, key: &str, n_codes: usize, dim: usize) -> Result<(Codebook<B>, Vec<f32>)> {
    let emb = w.take(&format!("{key}.embeddings"), &[n_codes, dim])?;
    w.skip(&format!("{key}.N"), &[n_codes])?;
    w.skip(&format!("{key}.z_avg"), &[n_codes, dim])?;
    let norms: Vec<f32> = emb.chunks_exact(dim).map(|e| e.iter().map(|v| v * v).sum()).collect();
    Ok((Codebook { n_codes, dim, embeddings: b.upload(&emb)?, norms: b.upload(&norms)? }, emb))
}

/// `post_vq_conv` applied to every code once, at load: decoding then starts with a lookup in
/// this table instead of a lookup and a 1×1×1 conv per position (the conv is linear and acts on
/// each position alone). Sums in f64, so the table is at least as exact as the conv it replaces.
pub fn project_codebook<B: Backend>(b: &B, emb: &[f32], n_codes: usize, conv: &HostConv) -> Result<Codebook<B>> {
    let (e, c) = (conv.cin, conv.cout);
    let mut table = Vec::with_capacity(n_codes * c);
    for code in emb.chunks_exact(e) {
        for (row, bias) in conv.weight.chunks_exact(e).zip(&conv.bias) {
            table.push((*bias as f64 + row.iter().zip(code).map(|(w, x)| *w as f64 * *x as f64).sum::<f64>()) as f32);
        }
    }
    // the table is only looked up, never searched: it needs no norms
    Ok(Codebook { n_codes, dim: c, embeddings: b.upload(&table)?, norms: b.upload(&[])? })
}
