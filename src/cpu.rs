//! The plain-Rust backend: the reference the GPU kernels are tested against, and the fallback
//! where no GPU adapter exists. Convolutions are im2col + SGEMM (`matrixmultiply`), chunked over
//! output frames so the column buffer stays small.

use crate::backend::{Backend, Codes, Dims, Tensor, Volume};
use crate::nn::{AxialAttention, ChannelAffine, ChannelNorm, Codebook, Conv3d, ConvTranspose3d};
use crate::Result;

#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

/// Largest im2col column buffer, in floats (64 MiB).
const MAX_COLUMN_FLOATS: usize = 16 << 20;

/// `c[m×n] (+)= a[m×k] · b[k×n]` with explicit row/column strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
) {
    // SAFETY: every caller passes slices that cover the strided extents it describes.
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), rsa, csa, b.as_ptr(), rsb, csb, beta, c.as_mut_ptr(), rsc, csc);
    }
}

impl Backend for Cpu {
    type Buffer = Vec<f32>;
    type IndexBuffer = Vec<u32>;

    fn upload(&self, data: &[f32]) -> Result<Vec<f32>> {
        Ok(data.to_vec())
    }

    fn upload_codes(&self, codes: &[u32], dims: [usize; 3]) -> Result<Codes<Self>> {
        Ok(Codes { dims, buf: codes.to_vec() })
    }

    fn conv3d(&self, x: &Tensor<Self>, conv: &Conv3d<Self>, residual: Option<&Tensor<Self>>, relu: bool) -> Result<Tensor<Self>> {
        let (i, k, s, pad) = (x.dims, conv.kernel, conv.stride, conv.pad_front());
        let o = Dims::new(conv.cout, i.t / s[0], i.h / s[1], i.w / s[2]);
        let (n_out, kvol) = (o.positions(), k[0] * k[1] * k[2]);
        let kk = conv.cin * kvol;
        let mut out = vec![0.0f32; o.len()];
        if kvol == 1 && s == [1; 3] {
            // 1×1×1: the input already is the column matrix
            sgemm(o.c, kk, n_out, &conv.weight, kk as isize, 1, &x.buf, n_out as isize, 1, 0.0, &mut out, n_out as isize, 1);
        } else {
            let frame = o.h * o.w;
            let frames_per_chunk = (MAX_COLUMN_FLOATS / (kk * frame)).clamp(1, o.t);
            let mut col = vec![0.0f32; kk * frame * frames_per_chunk];
            for t0 in (0..o.t).step_by(frames_per_chunk) {
                let nt = frames_per_chunk.min(o.t - t0);
                let n = nt * frame;
                // col[(ci, kt, kh, kw)][(ot, oh, ow)] = x[ci][ot·s + kt − pad]…, zero outside
                for ci in 0..conv.cin {
                    for kt in 0..k[0] {
                        for kh in 0..k[1] {
                            for kw in 0..k[2] {
                                let row = ((ci * k[0] + kt) * k[1] + kh) * k[2] + kw;
                                let dst = &mut col[row * n..(row + 1) * n];
                                for ot in 0..nt {
                                    let it = ((t0 + ot) * s[0] + kt) as isize - pad[0] as isize;
                                    for oh in 0..o.h {
                                        let ih = (oh * s[1] + kh) as isize - pad[1] as isize;
                                        let d = &mut dst[(ot * o.h + oh) * o.w..][..o.w];
                                        if it < 0 || it >= i.t as isize || ih < 0 || ih >= i.h as isize {
                                            d.fill(0.0);
                                            continue;
                                        }
                                        let src = &x.buf[((ci * i.t + it as usize) * i.h + ih as usize) * i.w..][..i.w];
                                        for (ow, v) in d.iter_mut().enumerate() {
                                            let iw = (ow * s[2] + kw) as isize - pad[2] as isize;
                                            *v = if iw < 0 || iw >= i.w as isize { 0.0 } else { src[iw as usize] };
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
                sgemm(o.c, kk, n, &conv.weight, kk as isize, 1, &col, n as isize, 1, 0.0, &mut out[t0 * frame..], n_out as isize, 1);
            }
        }
        for (co, row) in out.chunks_exact_mut(n_out).enumerate() {
            let b = conv.bias[co];
            row.iter_mut().for_each(|v| *v += b);
            if let Some(r) = residual {
                row.iter_mut().zip(&r.buf[co * n_out..(co + 1) * n_out]).for_each(|(v, r)| *v += r);
            }
            if relu {
                row.iter_mut().for_each(|v| *v = v.max(0.0));
            }
        }
        Ok(Tensor { dims: o, buf: out })
    }

    fn conv_transpose3d(&self, x: &Tensor<Self>, convt: &ConvTranspose3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        // Y[(co, k)][i] = Σ_ci W[ci][co][k] · x[ci][i], then scatter: out[co][i·s + k − 1] += Y,
        // keeping only the window [0, n·s) — the full transposed conv cropped to [1, 1 + n·s).
        let (i, s) = (x.dims, convt.stride);
        let o = Dims::new(convt.cout, i.t * s[0], i.h * s[1], i.w * s[2]);
        let rows = convt.cout * 64;
        let frame = i.h * i.w;
        let frames_per_chunk = (MAX_COLUMN_FLOATS / (rows * frame)).clamp(1, i.t);
        let mut y = vec![0.0f32; rows * frame * frames_per_chunk];
        let mut out = vec![0.0f32; o.len()];
        let n_in = i.positions();
        for t0 in (0..i.t).step_by(frames_per_chunk) {
            let nt = frames_per_chunk.min(i.t - t0);
            let n = nt * frame;
            // A[(co, k)][ci] = W[ci][(co, k)]; B[ci][pos] = x[ci][t0·frame + pos]
            sgemm(rows, convt.cin, n, &convt.weight, 1, rows as isize, &x.buf[t0 * frame..], n_in as isize, 1, 0.0, &mut y, n as isize, 1);
            for co in 0..convt.cout {
                for kt in 0..4 {
                    for kh in 0..4 {
                        for kw in 0..4 {
                            let yrow = &y[((co * 4 + kt) * 4 + kh) * 4 * n + kw * n..][..n];
                            for it in 0..nt {
                                let ot = ((t0 + it) * s[0] + kt) as isize - 1;
                                if ot < 0 || ot >= o.t as isize {
                                    continue;
                                }
                                for ih in 0..i.h {
                                    let oh = (ih * s[1] + kh) as isize - 1;
                                    if oh < 0 || oh >= o.h as isize {
                                        continue;
                                    }
                                    let dst = &mut out[((co * o.t + ot as usize) * o.h + oh as usize) * o.w..][..o.w];
                                    let src = &yrow[(it * i.h + ih) * i.w..][..i.w];
                                    for (iw, v) in src.iter().enumerate() {
                                        let ow = (iw * s[2] + kw) as isize - 1;
                                        if ow >= 0 && ow < o.w as isize {
                                            dst[ow as usize] += v;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        let n_out = o.positions();
        for (co, row) in out.chunks_exact_mut(n_out).enumerate() {
            let b = convt.bias[co];
            row.iter_mut().for_each(|v| *v = if relu { (*v + b).max(0.0) } else { *v + b });
        }
        Ok(Tensor { dims: o, buf: out })
    }

    fn affine_relu(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>) -> Result<Tensor<Self>> {
        let n = x.dims.positions();
        let mut out = x.buf.clone();
        for (c, row) in out.chunks_exact_mut(n).enumerate() {
            let (a, b) = (bn.scale[c], bn.shift[c]);
            row.iter_mut().for_each(|v| *v = (*v * a + b).max(0.0));
        }
        Ok(Tensor { dims: x.dims, buf: out })
    }

    fn channel_norm(&self, x: &Tensor<Self>, norm: &ChannelNorm<Self>, relu: bool, residual: Option<&Tensor<Self>>) -> Result<Tensor<Self>> {
        let (c, n) = (x.dims.c, x.dims.positions());
        let mut out = vec![0.0f32; x.buf.len()];
        for p in 0..n {
            let mean = (0..c).map(|ch| x.buf[ch * n + p]).sum::<f32>() / c as f32;
            let var = (0..c).map(|ch| (x.buf[ch * n + p] - mean).powi(2)).sum::<f32>() / c as f32;
            let rstd = 1.0 / (var + 1e-5).sqrt();
            for ch in 0..c {
                let mut y = (x.buf[ch * n + p] - mean) * rstd * norm.weight[ch] + norm.bias[ch];
                if relu {
                    y = y.max(0.0);
                }
                if let Some(r) = residual {
                    y = (y + r.buf[ch * n + p]).max(0.0);
                }
                out[ch * n + p] = y;
            }
        }
        Ok(Tensor { dims: x.dims, buf: out })
    }

    fn axial_attention(&self, qkv: &Tensor<Self>, attn: &AxialAttention<Self>) -> Result<Tensor<Self>> {
        let d = qkv.dims;
        let (c, n_head) = (attn.channels, attn.n_head);
        let dh = c / n_head;
        let n = d.positions();
        // position-major copy, so each head's q/k/v vector is contiguous
        let mut x = vec![0.0f32; n * 9 * c];
        for ch in 0..9 * c {
            for (p, v) in qkv.buf[ch * n..(ch + 1) * n].iter().enumerate() {
                x[p * 9 * c + ch] = *v;
            }
        }
        let mut out = vec![0.0f32; 3 * c * n];
        let scale = (dh as f32).sqrt();
        // axis 0 = W, 1 = H, 2 = T: (length, stride) of a line along it
        let axes = [(d.w, 1), (d.h, d.w), (d.t, d.h * d.w)];
        let mut scores = Vec::new();
        for (a, &(len, stride)) in axes.iter().enumerate() {
            scores.resize(len, 0.0f32);
            for p in 0..n {
                let base = p - (p / stride % len) * stride;
                for head in 0..n_head {
                    let q = &x[p * 9 * c + (3 * a) * c + head * dh..][..dh];
                    let mut max = f32::NEG_INFINITY;
                    for (j, sc) in scores.iter_mut().enumerate() {
                        let k = &x[(base + j * stride) * 9 * c + (3 * a + 1) * c + head * dh..][..dh];
                        *sc = q.iter().zip(k).map(|(a, b)| a * b).sum::<f32>() / scale;
                        max = max.max(*sc);
                    }
                    let mut sum = 0.0f32;
                    scores.iter_mut().for_each(|s| {
                        *s = (*s - max).exp();
                        sum += *s;
                    });
                    for dd in 0..dh {
                        let mut acc = 0.0f32;
                        for (j, sc) in scores.iter().enumerate() {
                            acc += sc / sum * x[(base + j * stride) * 9 * c + (3 * a + 2) * c + head * dh + dd];
                        }
                        out[(a * c + head * dh + dd) * n + p] = acc;
                    }
                }
            }
        }
        Ok(Tensor { dims: Dims { c: 3 * c, ..d }, buf: out })
    }

    fn codebook_argmin(&self, z: &Tensor<Self>, cb: &Codebook<Self>) -> Result<Codes<Self>> {
        let (n, e, k) = (z.dims.positions(), cb.dim, cb.n_codes);
        // dots[p][code] = Σ_e z[e][p] · emb[code][e]
        let mut dots = vec![0.0f32; n * k];
        sgemm(n, e, k, &z.buf, 1, n as isize, &cb.embeddings, 1, e as isize, 0.0, &mut dots, k as isize, 1);
        let codes = (0..n)
            .map(|p| {
                let xx: f32 = (0..e).map(|i| z.buf[i * n + p] * z.buf[i * n + p]).sum();
                let mut best = (f32::INFINITY, 0u32);
                for (code, dot) in dots[p * k..(p + 1) * k].iter().enumerate() {
                    let dist = (xx - 2.0 * dot) + cb.norms[code];
                    if dist < best.0 {
                        best = (dist, code as u32);
                    }
                }
                best.1
            })
            .collect();
        Ok(Codes { dims: [z.dims.t, z.dims.h, z.dims.w], buf: codes })
    }

    fn codebook_lookup(&self, codes: &Codes<Self>, cb: &Codebook<Self>) -> Result<Tensor<Self>> {
        let [t, h, w] = codes.dims;
        let n = t * h * w;
        let mut out = vec![0.0f32; cb.dim * n];
        for (p, &code) in codes.buf.iter().enumerate() {
            let row = &cb.embeddings[code as usize * cb.dim..][..cb.dim];
            for (e, v) in row.iter().enumerate() {
                out[e * n + p] = *v;
            }
        }
        Ok(Tensor { dims: Dims::new(cb.dim, t, h, w), buf: out })
    }

    async fn read_volume(&self, x: &Tensor<Self>) -> Result<Volume> {
        Ok(Volume { dims: x.dims, data: x.buf.clone() })
    }

    async fn read_codes(&self, codes: &Codes<Self>) -> Result<Vec<u32>> {
        Ok(codes.buf.clone())
    }

    fn is_eager(&self) -> bool {
        true
    }
}
