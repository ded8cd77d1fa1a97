//! The plain-Rust backend: the reference the GPU kernels are tested against, and the fallback
//! where no GPU adapter exists. Convolutions are SGEMMs (`gemm`: packed panels, one microkernel
//! per instruction set, the columns over every core) whose im2col columns are gathered while they
//! are packed (`im2col`); transposed convs are one such convolution per output parity class. The
//! loops around the products run over the cores as well (`threads`).

use crate::backend::{Backend, Codes, Dims, Tensor, Volume};
use crate::nn::{AxialAttention, ChannelAffine, ChannelNorm, Codebook, Conv3d, ConvTranspose3d};
use crate::Result;

mod gemm;
mod gemv;
mod im2col;
mod ops;
mod threads;

pub use gemm::{sgemm, sgemm_with, Microkernel};
use gemm::{sgemm_from, Epilogue, Strided};
pub(crate) use gemv::{gemv, gemv_f16, gemv_portable};
use im2col::{Gather, Padded};
pub use ops::Arithmetic;
pub(crate) use ops::{dot, softmax_mix};
pub use threads::thread_count;
pub(crate) use threads::{parallel_for_each, parallel_rows, parallel_rows_paced, Pace};

#[derive(Clone, Copy, Debug, Default)]
pub struct Cpu;

/// Transposed convs with at least this many output channels run as one GEMM per output parity
/// class; narrower ones (the decoder's RGB layer) as one GEMM over every (channel, tap) row and a
/// scatter, whose 64·cout rows fill the register tiles that cout alone would leave empty.
const SUBPIXEL_MIN_COUT: usize = 16;

/// Largest buffer of the narrow transposed convs' GEMM output, in floats (64 MiB).
const MAX_SCATTER_FLOATS: usize = 16 << 20;

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
        let epilogue = Epilogue { row_bias: Some(&conv.bias), residual: residual.map(|r| &r.buf[..]), relu, ..Default::default() };
        if kvol == 1 && s == [1; 3] {
            // 1×1×1: the input already is the column matrix
            let columns = Strided { b: &x.buf, rs: n_out, cs: 1 };
            sgemm_from(o.c, kk, n_out, &conv.weight, kk as isize, 1, &columns, 0.0, &mut out, n_out as isize, 1, &epilogue);
        } else {
            let taps = Gather::conv_taps(conv.cin, k, pad);
            let padded = Padded::for_taps(&x.buf, i, [o.t, o.h, o.w], s, taps.clone().map(|(_, shift)| shift));
            let columns = Gather::new(&padded, [o.t, o.h, o.w], s, taps);
            sgemm_from(o.c, kk, n_out, &conv.weight, kk as isize, 1, &columns, 0.0, &mut out, n_out as isize, 1, &epilogue);
        }
        Ok(Tensor { dims: o, buf: out })
    }

    fn upload_conv_transpose(&self, weight: &[f32], cin: usize, cout: usize, stride: [usize; 3]) -> Result<Vec<f32>> {
        Ok(if cout < SUBPIXEL_MIN_COUT { weight.to_vec() } else { im2col::subpixel_weight(weight, cin, cout, stride) })
    }

    fn conv_transpose3d(&self, x: &Tensor<Self>, convt: &ConvTranspose3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        if convt.cout < SUBPIXEL_MIN_COUT {
            return Ok(conv_transpose_scatter(x, convt, relu));
        }
        // Sub-pixel decomposition: each output parity class is an ordinary convolution of the
        // input over its taps (`im2col::subpixel_classes`), one GEMM each, its result written
        // into every s-th output; the bias and ReLU are applied on the way.
        let (i, s, cout) = (x.dims, convt.stride, convt.cout);
        let o = Dims::new(cout, i.t * s[0], i.h * s[1], i.w * s[2]);
        let n_in = i.positions();
        let mut out = vec![0.0f32; o.len()];
        let mut class_out = vec![0.0f32; cout * n_in];
        let mut weight = &convt.weight[..];
        let classes = im2col::subpixel_classes(s);
        let grid = [i.t, i.h, i.w];
        let padded = Padded::for_taps(&x.buf, i, grid, [1; 3], classes.iter().flat_map(|c| c.taps.iter().map(|&(_, shift)| shift)));
        for class in classes {
            let kk = class.taps.len() * convt.cin;
            let columns = Gather::new(&padded, grid, [1; 3], class.taps.iter().flat_map(|&(_, shift)| (0..convt.cin).map(move |ci| (ci, shift))));
            sgemm_from(cout, kk, n_in, &weight[..cout * kk], kk as isize, 1, &columns, 0.0, &mut class_out, n_in as isize, 1, &Epilogue::default());
            weight = &weight[cout * kk..];
            let [pt, ph, pw] = class.parity;
            let class_out = &class_out;
            parallel_rows(&mut out, o.positions(), n_in, 1 << 18, |co0, channels| {
                for (r, dst) in channels.chunks_exact_mut(o.positions()).enumerate() {
                    let co = co0 + r;
                    let b = convt.bias[co];
                    let src = &class_out[co * n_in..][..n_in];
                    for (q, line) in src.chunks_exact(i.w).enumerate() {
                        let (qt, qh) = (q / i.h, q % i.h);
                        let row = &mut dst[((qt * s[0] + pt) * o.h + qh * s[1] + ph) * o.w..][..o.w];
                        for (qw, v) in line.iter().enumerate() {
                            let y = v + b;
                            row[qw * s[2] + pw] = if relu { y.max(0.0) } else { y };
                        }
                    }
                }
            });
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
        let (d, c) = (qkv.dims, attn.channels);
        let x = ops::transpose(&qkv.buf, 9 * c, d.positions());
        let out = attend(&x, d, c, attn.n_head);
        Ok(Tensor { dims: Dims { c: 3 * c, ..d }, buf: ops::transpose(&out, d.positions(), 3 * c) })
    }

    fn axial_attention_block(&self, h: &Tensor<Self>, attn: &AxialAttention<Self>, residual: &Tensor<Self>) -> Result<Tensor<Self>> {
        // The projections run as GEMMs that read and write position-major, so the attention
        // between them needs no transposes: qkv[p][9C] = hᵀ·Wᵀ, then out = W_out·a[p][3C]ᵀ.
        let (d, c, n) = (h.dims, attn.channels, h.dims.positions());
        let (q, o) = (&attn.qkv, &attn.out);
        let mut qkv = vec![0.0f32; n * 9 * c];
        let weight_t = Strided { b: &q.weight, rs: 1, cs: c };
        let bias = Epilogue { col_bias: Some(&q.bias), ..Default::default() };
        sgemm_from(n, c, 9 * c, &h.buf, 1, n as isize, &weight_t, 0.0, &mut qkv, 9 * c as isize, 1, &bias);
        let a = attend(&qkv, d, c, attn.n_head);
        let mut out = vec![0.0f32; residual.buf.len()];
        let a_t = Strided { b: &a, rs: 1, cs: 3 * c };
        let bias_residual = Epilogue { row_bias: Some(&o.bias), residual: Some(&residual.buf), ..Default::default() };
        sgemm_from(c, 3 * c, n, &o.weight, 3 * c as isize, 1, &a_t, 0.0, &mut out, n as isize, 1, &bias_residual);
        Ok(Tensor { dims: d, buf: out })
    }

    fn codebook_argmin(&self, z: &Tensor<Self>, cb: &Codebook<Self>) -> Result<Codes<Self>> {
        let (n, e, k) = (z.dims.positions(), cb.dim, cb.n_codes);
        // dots[p][code] = Σ_e z[e][p] · emb[code][e]
        let mut dots = vec![0.0f32; n * k];
        sgemm(n, e, k, &z.buf, 1, n as isize, &cb.embeddings, 1, e as isize, 0.0, &mut dots, k as isize, 1);
        let mut codes = vec![0u32; n];
        parallel_for_each(&mut codes, k * e, |p, code_out| {
            let xx: f32 = (0..e).map(|i| z.buf[i * n + p] * z.buf[i * n + p]).sum();
            let mut best = (f32::INFINITY, 0u32);
            for (code, dot) in dots[p * k..(p + 1) * k].iter().enumerate() {
                let dist = (xx - 2.0 * dot) + cb.norms[code];
                if dist < best.0 {
                    best = (dist, code as u32);
                }
            }
            *code_out = best.1;
        });
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

/// Softmax attention along W, H and T, position-major: `x[p][9C]` (for axis W, H, T: q, k, v)
/// → `out[p][3C]` (the three axes' outputs). The positions are split over the cores.
fn attend(x: &[f32], d: Dims, c: usize, n_head: usize) -> Vec<f32> {
    let dh = c / n_head;
    let n = d.positions();
    let scale = (dh as f32).sqrt();
    // axis 0 = W, 1 = H, 2 = T: (length, stride) of a line along it
    let axes = [(d.w, 1), (d.h, d.w), (d.t, d.h * d.w)];
    let longest = d.w.max(d.h).max(d.t);
    let mut out = vec![0.0f32; n * 3 * c];
    parallel_rows(&mut out, 3 * c, 4 * c * (d.w + d.h + d.t), 1 << 20, |p0, rows| {
        let mut scores = vec![0.0f32; longest];
        for (r, o) in rows.chunks_exact_mut(3 * c).enumerate() {
            let p = p0 + r;
            for (a, &(len, stride)) in axes.iter().enumerate() {
                let base = p - (p / stride % len) * stride;
                for head in 0..n_head {
                    let q = &x[p * 9 * c + (3 * a) * c + head * dh..][..dh];
                    let mut max = f32::NEG_INFINITY;
                    for (j, sc) in scores[..len].iter_mut().enumerate() {
                        *sc = dot(q, &x[(base + j * stride) * 9 * c + (3 * a + 1) * c + head * dh..][..dh]) / scale;
                        max = max.max(*sc);
                    }
                    let values = (0..len).map(|j| &x[(base + j * stride) * 9 * c + (3 * a + 2) * c + head * dh..][..dh]);
                    softmax_mix(&mut scores[..len], max, values, &mut o[a * c + head * dh..][..dh], Arithmetic::Fastest);
                }
            }
        }
    });
    out
}

/// A transposed conv as `Y[(co, k)][i] = Σ_ci W[ci][co][k] · x[ci][i]`, then the scatter
/// `out[co][i·s + k − 1] += Y` over the window [0, n·s), the bias and ReLU last.
fn conv_transpose_scatter(x: &Tensor<Cpu>, convt: &ConvTranspose3d<Cpu>, relu: bool) -> Tensor<Cpu> {
    let (i, s) = (x.dims, convt.stride);
    let o = Dims::new(convt.cout, i.t * s[0], i.h * s[1], i.w * s[2]);
    let (rows, frame, n_in) = (convt.cout * 64, i.h * i.w, i.positions());
    // Y is 8× the output it scatters into: a few input frames at a time keep it within 64 MiB
    // at any resolution
    let frames_per_chunk = (MAX_SCATTER_FLOATS / (rows * frame)).clamp(1, i.t);
    let mut y = vec![0.0f32; rows * frame * frames_per_chunk];
    let mut out = vec![0.0f32; o.len()];
    for t0 in (0..i.t).step_by(frames_per_chunk) {
        let (nt, n) = (frames_per_chunk.min(i.t - t0), frames_per_chunk.min(i.t - t0) * frame);
        // A[(co, k)][ci] = W[ci][(co, k)]; B = the chunk's frames of x
        sgemm(rows, convt.cin, n, &convt.weight, 1, rows as isize, &x.buf[t0 * frame..], n_in as isize, 1, 0.0, &mut y, n as isize, 1);
        parallel_rows(&mut out, o.positions(), 64 * n, 1 << 18, |co0, channels| {
            for (r, ch) in channels.chunks_exact_mut(o.positions()).enumerate() {
                let co = co0 + r;
                for (kidx, yrow) in y[co * 64 * n..][..64 * n].chunks_exact(n).enumerate() {
                    let (kt, kh, kw) = (kidx / 16, kidx / 4 % 4, kidx % 4);
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
                            let dst = &mut ch[(ot as usize * o.h + oh as usize) * o.w..][..o.w];
                            for (iw, v) in yrow[(it * i.h + ih) * i.w..][..i.w].iter().enumerate() {
                                let ow = (iw * s[2] + kw) as isize - 1;
                                if ow >= 0 && ow < o.w as isize {
                                    dst[ow as usize] += v;
                                }
                            }
                        }
                    }
                }
            }
        });
    }
    let n_out = o.positions();
    parallel_rows(&mut out, n_out, n_out, 1 << 18, |co0, channels| {
        for (r, ch) in channels.chunks_exact_mut(n_out).enumerate() {
            let b = convt.bias[co0 + r];
            ch.iter_mut().for_each(|v| *v = if relu { (*v + b).max(0.0) } else { *v + b });
        }
    });
    Tensor { dims: o, buf: out }
}
