//! The GPT prior on the GPU: one decoding step is a chain of matrix-vector kernels (each with
//! VideoGPT's LayerNorm of its input fused in where one precedes it, and q, k, v as one product),
//! attention over a KV cache that lives on the GPU, and a sampling kernel that writes the drawn
//! token where the next step's embedding reads it: 5 dispatches a layer, 3 more a token. Logits
//! never leave the GPU while sampling; the grid is read back only as often as the caller wants
//! progress.

use std::rc::Rc;

use super::params::{DecodeAttentionParams, EmbedParams, SampleTokenParams};
use super::prior_weights::{Gemv, GpuPriorWeights, Norms};
use super::{Gpu, GpuBuffer as Buffer};
use crate::backend::Backend as _;
use crate::gpt::{AttnType, FrameFeatures, Gpt, SampleOptions, Sublayers};
use crate::resnet::RESNET_DIM;
use crate::{bail, Result};

pub struct GpuPrior<'g> {
    gpu: &'g Gpu,
    gpt: &'g Gpt,
    w: Rc<GpuPriorWeights>,
}

/// Buffers of one sampling run.
struct Run {
    /// `(g, b)` per norm for the run's class: per block (attention, MLP), then the final one.
    norms: Rc<Norms>,
    /// Per block of a frame-conditioned model: the cross-attention's norm, keys `[M][D]` and
    /// values `[M][240]`.
    cross: Vec<(Buffer, Buffer, Buffer)>,
    k_cache: Vec<Buffer>,
    v_cache: Vec<Buffer>,
    x: Buffer,
    x2: Buffer,
    x3: Buffer,
    cross_out: Buffer,
    q: Buffer,
    attn: Buffer,
    mlp: Buffer,
    logits: Buffer,
    scores: Buffer,
    grid: Buffer,
    token: Buffer,
    /// The uniform number each position's draw uses.
    draws: Buffer,
}

impl<'g> GpuPrior<'g> {
    /// Upload `gpt`'s weights to `gpu`.
    pub fn new(gpu: &'g Gpu, gpt: &'g Gpt) -> Result<Self> {
        Ok(GpuPrior { gpu, gpt, w: Rc::new(GpuPriorWeights::new(gpu, gpt)?) })
    }

    /// Reuse weights uploaded before (by [`GpuPrior::weights`] of a prior on the same `gpu`).
    pub fn with_weights(gpu: &'g Gpu, gpt: &'g Gpt, w: Rc<GpuPriorWeights>) -> Self {
        GpuPrior { gpu, gpt, w }
    }

    pub fn weights(&self) -> Rc<GpuPriorWeights> {
        self.w.clone()
    }
}

impl<'g> GpuPrior<'g> {
    /// The norms' gains and shifts for `class`, uploaded on first use.
    fn norms(&self, class: Option<usize>) -> Result<Rc<Norms>> {
        if let Some(norms) = self.w.norms.borrow().get(&class) {
            return Ok(norms.clone());
        }
        let g = self.gpu;
        let norm = |n: &crate::gpt::Norm| -> Result<Buffer> {
            let (gain, shift) = n.affine(class);
            g.upload(&[gain, shift].concat())
        };
        let mut norms = Vec::new();
        for b in &self.gpt.blocks {
            norms.push(norm(&b.pre_attn_norm)?);
            norms.push(norm(&b.pre_fc_norm)?);
        }
        norms.push(norm(&self.gpt.norm)?);
        let norms = Rc::new(norms);
        self.w.norms.borrow_mut().insert(class, norms.clone());
        Ok(norms)
    }

    /// Buffers for one run; `class`, `frames` and `prefix` are checked by the caller, `draws`
    /// holds the uniform number of each position (zeros where nothing is drawn).
    fn start(&self, class: Option<usize>, frames: Option<&FrameFeatures>, prefix: &[u32], draws: &[f32]) -> Result<Run> {
        let g = self.gpu;
        let c = &self.gpt.config;
        let (d, n) = (c.hidden_dim, c.positions());
        let norm = |n: &crate::gpt::Norm| -> Result<Buffer> {
            let (gain, shift) = n.affine(class);
            g.upload_transient(bytemuck::cast_slice(&[gain, shift].concat()), "norm")
        };
        let norms = self.norms(class)?;
        let cross = self
            .gpt
            .blocks
            .iter()
            .zip(self.gpt.cross_kv(frames))
            .filter_map(|(b, (k, v))| b.cross.as_ref().map(|c| (c, k, v)))
            .map(|(c, k, v)| {
                Ok((norm(&c.norm)?, g.upload_transient(bytemuck::cast_slice(&k), "cross keys")?, g.upload_transient(bytemuck::cast_slice(&v), "cross values")?))
            })
            .collect::<Result<Vec<_>>>()?;
        let m: usize = c.cond_shape().iter().product();
        let mut grid = vec![0u32; n];
        grid[..prefix.len()].copy_from_slice(prefix);
        Ok(Run {
            norms,
            k_cache: (0..c.layers).map(|_| g.storage(n * d, "key cache")).collect::<Result<_>>()?,
            v_cache: (0..c.layers).map(|_| g.storage(n * d, "value cache")).collect::<Result<_>>()?,
            x: g.storage(d, "x")?,
            x2: g.storage(d, "x")?,
            x3: g.storage(d, "x")?,
            cross_out: g.storage(RESNET_DIM, "cross-attention")?,
            cross,
            q: g.storage(d, "q")?,
            attn: g.storage(d, "attention")?,
            mlp: g.storage(4 * d, "mlp")?,
            logits: g.storage(c.n_codes, "logits")?,
            scores: g.storage(c.heads * n.max(m), "scores")?,
            grid: g.upload_u32(&grid, "grid")?,
            token: g.storage(1, "token")?,
            draws: g.upload_transient(bytemuck::cast_slice(draws), "draws")?,
        })
    }

    /// Record step `i`: embed the token of position i−1 (held in `run.token`), run the stack, and
    /// leave the logits of position i in `run.logits`.
    fn step(&self, run: &Run, i: usize) -> Result<()> {
        let g = self.gpu;
        let c = &self.gpt.config;
        let d = c.hidden_dim;
        if i == 0 {
            g.copy(&self.w.first_input, 0, &run.x, 0, d);
        } else {
            // fc_in(codebook vector of the previous token) + pos[i], from the table
            let params = EmbedParams { dim: d as u32, n_codes: c.n_codes as u32, position: i as u32, ..Default::default() };
            g.dispatch(g.kernels.embed(), &params, &[&run.token, &self.w.embeddings, &self.w.pos, &run.x], (d.div_ceil(256) as u32, 1, 1))?;
            g.count_weight_bytes((8 * d) as u64); // a row of the embeddings and of pos
        }
        let mut step = DecodingStep { prior: self, run, i, stream: &run.x };
        self.gpt.walk_blocks(&mut step)?;
        let last_norm = run.norms.last().expect("final norm");
        self.w.gemv(self.gpu, &self.w.fc_out, Gemv { norm: Some(last_norm), ..Gemv::new(&run.x, &run.logits) })
    }

    /// Sample a grid on the GPU (see [`Gpt::sample`]); the uniform numbers come from the same
    /// seeded generator, so a seed reproduces a sample on this device. `on_progress(tokens, grid)`
    /// is called about every `report_every` drawn tokens with the grid so far.
    pub async fn sample(&self, opts: &SampleOptions, prefix: &[u32], report_every: usize, mut on_progress: impl FnMut(usize, &[u32])) -> Result<Vec<u32>> {
        let c = &self.gpt.config;
        let n = c.positions();
        self.gpt.check_sample(opts, prefix)?;
        // one uniform number per drawn position, in the order the CPU sampler takes them
        let mut rng = crate::rng::SplitMix64::new(opts.seed);
        let draws: Vec<f32> = (0..n).map(|i| if i < prefix.len() { 0.0 } else { rng.next_f64() as f32 }).collect();
        let run = self.start(opts.class, opts.frames.as_ref(), prefix, &draws)?;
        let top_k = opts.top_k.unwrap_or(c.n_codes).min(c.n_codes) as u32;
        let mut since_report = 0;
        for i in 0..n {
            self.step(&run, i)?;
            if i < prefix.len() {
                self.gpu.copy(&run.grid, i, &run.token, 0, 1);
                continue;
            }
            let params = SampleTokenParams { n_codes: c.n_codes as u32, top_k, position: i as u32, temperature: opts.temperature, ..Default::default() };
            self.gpu.dispatch(self.gpu.kernels.sample_token(), &params, &[&run.logits, &run.grid, &run.token, &run.draws], (1, 1, 1))?;
            since_report += 1;
            if report_every > 0 && since_report >= report_every && i + 1 < n {
                since_report = 0;
                let grid = self.gpu.read_u32(&run.grid, n).await?;
                on_progress(i + 1, &grid[..i + 1]);
            }
        }
        let grid = self.gpu.read_u32(&run.grid, n).await?;
        on_progress(n, &grid);
        Ok(grid)
    }

    /// Teacher-forced logits `[N][K]` computed one decoding step at a time (for tests: the GPU
    /// decode path against the CPU's parallel forward).
    pub async fn logits_by_steps(&self, codes: &[u32], class: Option<usize>, frames: Option<&FrameFeatures>) -> Result<Vec<f32>> {
        let c = &self.gpt.config;
        if codes.len() != c.positions() {
            bail!(Input, "{} tokens given; this GPT models {}", codes.len(), c.positions());
        }
        self.gpt.check_class(class)?;
        self.gpt.check_frames(frames)?;
        self.gpt.check_codes(codes)?;
        let run = self.start(class, frames, codes, &[0.0])?;
        let mut out = Vec::with_capacity(codes.len() * c.n_codes);
        for i in 0..codes.len() {
            self.step(&run, i)?;
            self.gpu.copy(&run.grid, i, &run.token, 0, 1);
            out.extend(self.gpu.read_f32(&run.logits, c.n_codes).await?);
        }
        Ok(out)
    }
}

/// A decoding step's residual stream on the GPU. It moves between three buffers, because a product
/// cannot add its input in place: the self-attention writes `x2` from `x`, the cross-attention
/// `x3` from `x2`, and the MLP `x` again from whichever came last (`stream`).
struct DecodingStep<'a, 'g> {
    prior: &'a GpuPrior<'g>,
    run: &'a Run,
    i: usize,
    stream: &'a Buffer,
}

impl Sublayers for DecodingStep<'_, '_> {
    fn self_attention(&mut self, l: usize) -> Result<()> {
        let (p, run, g) = (self.prior, self.run, self.prior.gpu);
        let (c, b, d) = (&p.gpt.config, &p.w.blocks[l], p.gpt.config.hidden_dim);
        // q of this position, and its k and v straight into row i of the caches, from the
        // normed x: one product
        let qkv = Gemv { norm: Some(&run.norms[2 * l]), split: Some((&run.k_cache[l], &run.v_cache[l], self.i * d)), ..Gemv::new(&run.x, &run.q) };
        p.w.gemv(p.gpu, &b.w_qkv, qkv)?;
        #[rustfmt::skip]
        let params = DecodeAttentionParams {
            dim: d as u32, heads: c.heads as u32, position: self.i as u32, n_positions: c.positions() as u32,
            sparse: (c.attn_type == AttnType::Sparse) as u32, blocks_per_frame: p.gpt.blocks_per_frame as u32, v_dim: d as u32,
            ..Default::default()
        };
        g.dispatch(g.kernels.decode_attention(), &params, &[&run.q, &run.k_cache[l], &run.v_cache[l], &run.scores, &run.attn], (c.heads as u32, 1, 1))?;
        p.w.gemv(p.gpu, &b.fc, Gemv { residual: Some((&run.x, 0)), ..Gemv::new(&run.attn, &run.x2) })?;
        self.stream = &run.x2;
        Ok(())
    }

    fn cross_attention(&mut self, l: usize) -> Result<()> {
        let (p, run, g) = (self.prior, self.run, self.prior.gpu);
        let (c, d) = (&p.gpt.config, p.gpt.config.hidden_dim);
        let (Some((w_qs, fc)), Some((norm, k, v))) = (&p.w.blocks[l].cross, run.cross.get(l)) else {
            bail!(Input, "layer {l} cross-attends, but this run has no frame features");
        };
        // every frame feature is visible: the query sits after the last one, no sparse mask
        let m: usize = c.cond_shape().iter().product();
        p.w.gemv(p.gpu, w_qs, Gemv { norm: Some(norm), ..Gemv::new(&run.x2, &run.q) })?;
        #[rustfmt::skip]
        let params = DecodeAttentionParams {
            dim: d as u32, heads: c.heads as u32, position: (m - 1) as u32, n_positions: m as u32,
            sparse: 0, blocks_per_frame: 1, v_dim: RESNET_DIM as u32, ..Default::default()
        };
        g.dispatch(g.kernels.decode_attention(), &params, &[&run.q, k, v, &run.scores, &run.cross_out], (c.heads as u32, 1, 1))?;
        p.w.gemv(p.gpu, fc, Gemv { residual: Some((&run.x2, 0)), ..Gemv::new(&run.cross_out, &run.x3) })?;
        self.stream = &run.x3;
        Ok(())
    }

    fn mlp(&mut self, l: usize) -> Result<()> {
        let (p, run, b) = (self.prior, self.run, &self.prior.w.blocks[l]);
        p.w.gemv(p.gpu, &b.fc1, Gemv { norm: Some(&run.norms[2 * l + 1]), gelu2: true, ..Gemv::new(self.stream, &run.mlp) })?;
        p.w.gemv(p.gpu, &b.fc2, Gemv { residual: Some((self.stream, 0)), ..Gemv::new(&run.mlp, &run.x) })?;
        self.stream = &run.x;
        Ok(())
    }
}
