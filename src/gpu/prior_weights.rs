//! The GPT prior's weights on the GPU, and the matrix-vector product a decoding step is made of.
//!
//! A Linear layer whose file stores f16 weights keeps them as f16 here too, two to a 32-bit word
//! (`shaders/gemv.wgsl` widens each as it loads it): a step reads every weight once, so half the
//! bytes is most of its time. The values are exactly the file's, and the kernel sums in the same
//! order either way, so the logits are the f32 layout's bit for bit (`tests/gpu_prior.rs`). The
//! CPU path does the same (`gpt::Linear::weight_f16`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use super::params::GemvParams;
use super::{Gpu, GpuBuffer as Buffer, GEMV_BIAS, GEMV_F16, GEMV_GELU2, GEMV_NORM, GEMV_RESIDUAL, GEMV_SPLIT3};
use crate::backend::Backend as _;
use crate::gpt::{Gpt, Linear};
use crate::Result;

pub(super) struct GpuLinear {
    /// `[d_out][d_in]` as f32, or as f16 two to a word (the first in the low half) where `f16`.
    weight: Buffer,
    f16: bool,
    /// Bytes of weights and bias one product reads.
    bytes_read: u64,
    bias: Option<Buffer>,
    d_in: usize,
    d_out: usize,
}

impl GpuLinear {
    /// The layers' weights one after another (their biases too, zeros standing in for a missing
    /// one), as f16 where the file stores every one of them so.
    fn upload(gpu: &Gpu, ls: &[&Linear]) -> Result<GpuLinear> {
        let (d_in, d_out) = (ls[0].d_in, ls.iter().map(|l| l.d_out).sum::<usize>());
        let f16 = ls.iter().all(|l| l.stored_f16);
        let values = ls.iter().flat_map(|l| l.weight.iter().copied());
        let weight = if f16 {
            // exact: the values came from f16 in the file
            let halves: Vec<u16> = values.map(|v| half::f16::from_f32(v).to_bits()).collect();
            let words: Vec<u32> = halves.chunks(2).map(|p| p[0] as u32 | (p.get(1).copied().unwrap_or(0) as u32) << 16).collect();
            gpu.upload_bytes(bytemuck::cast_slice(&words), "f16 weights")?
        } else {
            gpu.upload(&values.collect::<Vec<f32>>())?
        };
        let bias =
            ls.iter().any(|l| l.bias.is_some()).then(|| ls.iter().flat_map(|l| l.bias.clone().unwrap_or_else(|| vec![0.0; l.d_out])).collect::<Vec<f32>>());
        let bytes_read = (d_in * d_out * if f16 { 2 } else { 4 } + bias.as_ref().map_or(0, |b| 4 * b.len())) as u64;
        Ok(GpuLinear { weight, f16, bytes_read, bias: bias.map(|b| gpu.upload(&b)).transpose()?, d_in, d_out })
    }
}

pub(super) struct GpuBlock {
    /// w_qs, w_ks and w_vs stacked: one product writes q and this position's key and value.
    pub(super) w_qkv: GpuLinear,
    pub(super) fc: GpuLinear,
    /// The cross-attention's query and output projections (its keys and values are computed
    /// once per run from the frame features).
    pub(super) cross: Option<(GpuLinear, GpuLinear)>,
    pub(super) fc1: GpuLinear,
    pub(super) fc2: GpuLinear,
}

/// Where a matrix-vector product reads and writes.
pub(super) struct Gemv<'a> {
    pub(super) x: &'a Buffer,
    pub(super) x_offset: usize,
    pub(super) out: &'a Buffer,
    pub(super) out_offset: usize,
    pub(super) residual: Option<(&'a Buffer, usize)>,
    pub(super) gelu2: bool,
    /// LayerNorm x first with these `[gain; shift]`.
    pub(super) norm: Option<&'a Buffer>,
    /// Rows split in three: `out` gets the first part, these two buffers the others, at this offset.
    pub(super) split: Option<(&'a Buffer, &'a Buffer, usize)>,
}

impl<'a> Gemv<'a> {
    pub(super) fn new(x: &'a Buffer, out: &'a Buffer) -> Self {
        Gemv { x, x_offset: 0, out, out_offset: 0, residual: None, gelu2: false, norm: None, split: None }
    }
}

/// `[gain; shift]` of each norm for one class: per block (attention, MLP), then the final one.
pub(super) type Norms = Vec<Buffer>;

/// A prior's weights on the GPU, uploaded once per loaded prior and shared by every run.
pub struct GpuPriorWeights {
    /// `fc_in` of every codebook vector, `[n_codes][hidden_dim]`: a step's input is a row of it.
    pub(super) embeddings: Buffer,
    /// `sos + pos[0]`, the input of step 0.
    pub(super) first_input: Buffer,
    pub(super) pos: Buffer,
    pub(super) blocks: Vec<GpuBlock>,
    pub(super) fc_out: GpuLinear,
    /// `(g, b)` per norm for a class (None: unconditioned), uploaded the first time a run asks.
    pub(super) norms: RefCell<HashMap<Option<usize>, Rc<Norms>>>,
}

impl GpuPriorWeights {
    pub(super) fn new(gpu: &Gpu, gpt: &Gpt) -> Result<Self> {
        let up = |l: &Linear| GpuLinear::upload(gpu, &[l]);
        // q, k and v from one product: the three weights one after another
        let stack = |ls: [&Linear; 3]| GpuLinear::upload(gpu, &ls);
        // fc_in is linear: apply it to every code once (in f64, as exact as the product it replaces)
        let e = gpt.config.embedding_dim;
        let fc_in = &gpt.fc_in;
        let embeddings: Vec<f32> = gpt
            .codebook
            .chunks_exact(e)
            .flat_map(|code| {
                fc_in.weight.chunks_exact(e).enumerate().map(move |(j, row)| {
                    let bias = fc_in.bias.as_ref().map_or(0.0, |b| b[j] as f64);
                    (bias + row.iter().zip(code).map(|(w, x)| *w as f64 * *x as f64).sum::<f64>()) as f32
                })
            })
            .collect();
        let d = gpt.config.hidden_dim;
        let first: Vec<f32> = gpt.sos.iter().zip(&gpt.pos[..d]).map(|(s, p)| s + p).collect();
        Ok(GpuPriorWeights {
            embeddings: gpu.upload(&embeddings)?,
            first_input: gpu.upload(&first)?,
            pos: gpu.upload(&gpt.pos)?,
            blocks: gpt
                .blocks
                .iter()
                .map(|b| {
                    Ok(GpuBlock {
                        w_qkv: stack([&b.w_qs, &b.w_ks, &b.w_vs])?,
                        fc: up(&b.fc)?,
                        cross: b.cross.as_ref().map(|c| Ok::<_, crate::Error>((up(&c.w_qs)?, up(&c.fc)?))).transpose()?,
                        fc1: up(&b.fc1)?,
                        fc2: up(&b.fc2)?,
                    })
                })
                .collect::<Result<_>>()?,
            fc_out: up(&gpt.fc_out)?,
            norms: Default::default(),
        })
    }

    /// Record `l`'s product as `io` says (`shaders/gemv.wgsl`).
    pub(super) fn gemv(&self, g: &Gpu, l: &GpuLinear, io: Gemv) -> Result<()> {
        let (gx, gy) = super::workgroups(l.d_out, 1, g.limits.max_compute_workgroups_per_dimension)?;
        let flag = |on: bool, f: u32| if on { f } else { 0 };
        let flags = flag(l.bias.is_some(), GEMV_BIAS)
            | flag(io.gelu2, GEMV_GELU2)
            | flag(io.residual.is_some(), GEMV_RESIDUAL)
            | flag(io.norm.is_some(), GEMV_NORM)
            | flag(io.split.is_some(), GEMV_SPLIT3)
            | flag(l.f16, GEMV_F16);
        // unused bindings get stand-ins the kernel does not touch: read-only ones the weights, the
        // split outputs the runtime's two unused-output stand-ins
        let (res, res_offset) = io.residual.unwrap_or((&l.weight, 0));
        let bias = l.bias.as_ref().unwrap_or(&l.weight);
        let norm = io.norm.unwrap_or(&l.weight);
        let (out2, out3, split_offset) = match io.split {
            Some(split) => split,
            None => {
                let (a, b) = g.unused_outputs()?;
                (a, b, 0)
            }
        };
        #[rustfmt::skip]
        let params = GemvParams {
            d_in: l.d_in as u32, d_out: l.d_out as u32, flags, residual_offset: res_offset as u32,
            x_offset: io.x_offset as u32, groups_x: gx, out_offset: io.out_offset as u32, split_offset: split_offset as u32,
        };
        g.dispatch(g.kernels.gemv(), &params, &[io.x, &l.weight, bias, res, io.out, norm, out2, out3], (gx, gy, 1))?;
        // and the fused LayerNorm's gain and shift
        g.count_weight_bytes(l.bytes_read + io.norm.map_or(0, |_| 8 * l.d_in as u64));
        Ok(())
    }
}
