//! Sampling from the prior (spec §3.7): options (temperature, top-k, seed, class, frames), drawing
//! one token from logits, and decoding one position at a time through a KV cache.

use super::*;
use crate::cpu::Arithmetic;

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
    pub(crate) k: Vec<Vec<f32>>,
    pub(crate) v: Vec<Vec<f32>>,
    /// Positions filled.
    pub len: usize,
    pub(crate) class: Option<usize>,
    /// Per layer, the cross-attention's keys `[M][D]` and values `[M][240]` of the frame features.
    pub(crate) cross: Vec<(Vec<f32>, Vec<f32>)>,
    /// The arithmetic of every step through this cache.
    pub(crate) arithmetic: Arithmetic,
}

impl Gpt {
    pub fn new_cache(&self, class: Option<usize>) -> Result<KvCache> {
        self.new_cache_with(class, None)
    }

    /// A cache for decoding with conditioning frames: their keys and values are computed once.
    pub fn new_cache_with(&self, class: Option<usize>, frames: Option<&FrameFeatures>) -> Result<KvCache> {
        self.check_class(class)?;
        self.check_frames(frames)?;
        let n = self.config.layers;
        Ok(KvCache { k: vec![Vec::new(); n], v: vec![Vec::new(); n], len: 0, class, cross: self.cross_kv(frames), arithmetic: Arithmetic::Fastest })
    }

    /// A cache whose steps run in [`Arithmetic::Portable`]: logits bit-identical on every
    /// machine, for coding tokens under the prior (`crate::entropy`). Frame-conditioned models
    /// are refused: their frame encoder runs through this processor's GEMM kernels.
    pub fn new_portable_cache(&self, class: Option<usize>) -> Result<KvCache> {
        if self.config.n_cond_frames > 0 {
            bail!(Input, "a frame-conditioned prior cannot code tokens: its frame encoder is not computed the same on every machine");
        }
        Ok(KvCache { arithmetic: Arithmetic::Portable, ..self.new_cache(class)? })
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
                self.embed(&[t], cache.arithmetic)
            }
            (_, None) => bail!(Input, "step {i} needs the previous token"),
        };
        x.iter_mut().zip(&self.pos[i * d..(i + 1) * d]).for_each(|(x, p)| *x += p);
        let class = cache.class;
        let mut step = DecodingStep { gpt: self, x, cache, i };
        self.walk_blocks(&mut step)?;
        let x = step.x;
        cache.len += 1;
        Ok(self.fc_out.forward_in(&self.norm.forward(&x, d, class), cache.arithmetic))
    }
}

/// A decoding step's residual stream: one position, its key and value appended to the cache.
struct DecodingStep<'a> {
    gpt: &'a Gpt,
    x: Vec<f32>,
    cache: &'a mut KvCache,
    i: usize,
}

impl Sublayers for DecodingStep<'_> {
    fn self_attention(&mut self, layer: usize) -> Result<()> {
        let (g, b, c) = (self.gpt, &self.gpt.blocks[layer], &mut *self.cache);
        let h = b.pre_attn_norm.forward(&self.x, g.config.hidden_dim, c.class);
        let arithmetic = c.arithmetic;
        c.k[layer].extend(b.w_ks.forward_in(&h, arithmetic));
        c.v[layer].extend(b.w_vs.forward_in(&h, arithmetic));
        let q = b.w_qs.forward_in(&h, arithmetic);
        let a = b.fc.forward_in(&g.attend_rows(&q, &c.k[layer], &c.v[layer], self.i, arithmetic), arithmetic);
        self.x.iter_mut().zip(a).for_each(|(x, a)| *x += a);
        Ok(())
    }
    fn cross_attention(&mut self, layer: usize) -> Result<()> {
        self.gpt.cross_attend(&self.gpt.blocks[layer], &mut self.x, self.cache.cross.get(layer), self.cache.class);
        Ok(())
    }
    fn mlp(&mut self, layer: usize) -> Result<()> {
        self.gpt.mlp(&self.gpt.blocks[layer], &mut self.x, self.cache.class, self.cache.arithmetic);
        Ok(())
    }
}
