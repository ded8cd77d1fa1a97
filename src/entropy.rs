//! Tokens coded under the prior: the prior's probability of each token, given the tokens before
//! it in raster order, drives a range coder, so a clip costs about the prior's bits per token
//! (2.3 for `mmnist-prior`) instead of ⌈log2 K⌉ (8 to 11). This is what makes `.vgt` v2 files
//! and links several times smaller (`crate::vgt`, docs/vgt-format.md).
//!
//! The decoder must compute exactly the probabilities the encoder used, on another machine and
//! in another browser. Three things make that so:
//! 1. The prior runs in [`Arithmetic::Portable`] through a KV cache, one position at a time, on
//!    both sides (the encoder does not take the faster teacher-forced pass: a batched GEMM sums
//!    in another order than the step's dot products). Portable arithmetic is one fixed sequence
//!    of IEEE-754 operations: plain-Rust dot products in a fixed order, no FMA, `exp` from the
//!    pure-Rust `libm`. IEEE-754 rounds each of those operations the same way everywhere.
//! 2. Logits become integer frequencies by [`frequencies`], itself a fixed sequence of f64
//!    operations (`libm::exp`), then integers from there on.
//! 3. The coder (constriction's range coder) works on those integers only.
//!
//! A decoder that did compute other probabilities (a bug, or a future kernel) falls out of step
//! with the encoder at the first token where they differ and reads the rest of the words as
//! noise. The range coder's own final check does not reliably notice (measured: a flipped bit
//! decoded to other tokens and passed it), so `.vgt` files carry a checksum of the tokens, which
//! the reader compares after decoding: an error, not another clip.

use constriction::stream::model::ContiguousCategoricalEntropyModel;
use constriction::stream::queue::{DefaultRangeDecoder, DefaultRangeEncoder};
use constriction::stream::{Decode, Encode};

use crate::gpt::Gpt;
use crate::tokens::Tokens;
use crate::{bail, Error, Result};

/// Fixed-point precision of the coded probabilities: each code's frequency is an integer of at
/// least 1 out of 2^24, so no token costs more than 24 bits and a likely one loses nothing
/// measurable to the rounding.
pub const PRECISION: usize = 24;
const TOTAL: i64 = 1 << PRECISION;

type Model = ContiguousCategoricalEntropyModel<u32, Vec<u32>, PRECISION>;

/// The prior's distribution over the next token as integer frequencies summing to 2^24, every
/// code at least 1: `1 + ⌊p_i · (2^24 − K)⌋`, the rounding's remainder given to the most likely
/// code (the first, on ties). A fixed sequence of f64 operations, `exp` from `libm`.
pub fn frequencies(logits: &[f32]) -> Vec<u32> {
    let k = logits.len() as i64;
    let max = logits.iter().fold(f64::NEG_INFINITY, |m, &l| m.max(l as f64));
    let weights: Vec<f64> = logits.iter().map(|&l| libm::exp(l as f64 - max)).collect();
    let sum: f64 = weights.iter().sum();
    let spread = (TOTAL - k) as f64 / sum;
    let mut freq: Vec<u32> = weights.iter().map(|w| 1 + (w * spread).floor() as u32).collect();
    let assigned: i64 = freq.iter().map(|&f| f as i64).sum();
    // the most likely code holds at least (2^24 − K)/K, far more than the few units of rounding
    let top = logits.iter().enumerate().fold(0, |best, (i, &l)| if l > logits[best] { i } else { best });
    freq[top] = (freq[top] as i64 + TOTAL - assigned) as u32;
    freq
}

fn model(logits: &[f32]) -> Model {
    Model::from_nonzero_fixed_point_probabilities(frequencies(logits), false).expect("frequencies sum to 2^24, every one nonzero")
}

/// Check that the prior can code this grid: an unconditional prior of this token grid's shape.
pub fn check_prior(gpt: &Gpt, latent: [usize; 3]) -> Result<()> {
    if gpt.config.class_cond_dim > 0 {
        bail!(Input, "a class-conditional prior cannot code tokens (the file would need the class); use an unconditional one");
    }
    if gpt.config.latent != latent {
        bail!(Input, "the prior models {:?} token grids; these tokens are {latent:?}", gpt.config.latent);
    }
    Ok(())
}

/// Code every clip of `tokens` under the prior: the range coder's 32-bit words.
/// `progress(done, total)` is called after every token.
pub fn encode(gpt: &Gpt, tokens: &Tokens, mut progress: impl FnMut(usize, usize)) -> Result<Vec<u32>> {
    check_prior(gpt, tokens.latent())?;
    crate::tokens::check_codes(tokens, gpt.config.n_codes)?;
    let mut coder = DefaultRangeEncoder::new();
    let total = tokens.codes.len();
    for (c, clip) in tokens.clips().enumerate() {
        let mut cache = gpt.new_portable_cache(None)?;
        let mut previous = None;
        for (i, &token) in clip.iter().enumerate() {
            let logits = gpt.step(&mut cache, previous)?;
            coder.encode_symbol(token as usize, model(&logits)).map_err(|e| Error::Input(format!("range coder: {e:?}")))?;
            previous = Some(token);
            progress(c * clip.len() + i + 1, total);
        }
    }
    coder.into_compressed().map_err(|e| Error::Input(format!("range coder: {e:?}")))
}

/// Decode `clips` grids of the prior's shape from the range coder's words. Words that were not
/// coded under these probabilities give an error or other tokens (the caller's checksum of the
/// tokens tells), never a panic; the work is bounded by the grid's size whatever the words hold.
pub fn decode(gpt: &Gpt, words: Vec<u32>, clips: usize, mut progress: impl FnMut(usize, usize)) -> Result<Tokens> {
    let latent = gpt.config.latent;
    check_prior(gpt, latent)?;
    let per_clip: usize = latent.iter().product();
    let total = clips * per_clip;
    let corrupt = || {
        Error::Input(
            "the coded tokens do not decode under this prior: the file was damaged before its checksum was made, or this machine computed other probabilities than the one that wrote it".into(),
        )
    };
    let mut coder = DefaultRangeDecoder::from_compressed(words).map_err(|_| corrupt())?;
    let mut codes = Vec::with_capacity(total);
    for _ in 0..clips {
        let mut cache = gpt.new_portable_cache(None)?;
        let mut previous = None;
        for _ in 0..per_clip {
            let logits = gpt.step(&mut cache, previous)?;
            let token = coder.decode_symbol(model(&logits)).map_err(|_| corrupt())? as u32;
            codes.push(token);
            previous = Some(token);
            progress(codes.len(), total);
        }
    }
    if !coder.maybe_exhausted() {
        return Err(corrupt());
    }
    Ok(Tokens { shape: [clips, latent[0], latent[1], latent[2]], codes })
}
