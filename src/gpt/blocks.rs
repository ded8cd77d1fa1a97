//! The order of a transformer block's sublayers (spec §3.2), written once: pre-norm self-attention,
//! cross-attention to the conditioning frames where the model has it, then the pre-norm GeLU2
//! MLP, each added to the residual stream. Three walkers provide the sublayers: the CPU's parallel
//! forward over a whole grid ([`super::Gpt::logits_with`]), its KV-cache decoding step
//! ([`super::Gpt::step`]), and the GPU's decoding step (`gpu::GpuPrior`, with the norms fused into
//! the products after them).

use super::Gpt;
use crate::Result;

/// One model's sublayers on one backend, over the residual stream the implementor holds.
pub(crate) trait Sublayers {
    /// `x += fc(attention(q, k, v))` with q, k, v from `pre_attn_norm(x)`, causally masked.
    fn self_attention(&mut self, layer: usize) -> Result<()>;
    /// `x += fc(attention(w_qs(norm(x)), frame keys, frame values))`, unmasked.
    fn cross_attention(&mut self, layer: usize) -> Result<()>;
    /// `x += fc2(gelu2(fc1(pre_fc_norm(x))))`.
    fn mlp(&mut self, layer: usize) -> Result<()>;
}

impl Gpt {
    /// Run every block over `s`'s residual stream, in VideoGPT's order.
    pub(crate) fn walk_blocks(&self, s: &mut impl Sublayers) -> Result<()> {
        for (layer, block) in self.blocks.iter().enumerate() {
            s.self_attention(layer)?;
            if block.cross.is_some() {
                s.cross_attention(layer)?;
            }
            s.mlp(layer)?;
        }
        Ok(())
    }
}
