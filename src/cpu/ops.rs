//! Small vector kernels the CPU path shares: written so the compiler vectorises them (independent
//! partial sums, unit-stride inner loops).

/// Dot product with 8 independent partial sums, which the compiler vectorises.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
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

/// Which arithmetic the prior's CPU step runs in.
///
/// `Fastest` takes this processor's best kernels (AVX-512 or AVX2 with FMA) and the platform's
/// `exp`. `Portable` is one fixed sequence of IEEE-754 single-precision operations, the same on
/// every machine: the dot products in plain Rust ([`dot`]: 8 partial sums added in a fixed order;
/// rustc never contracts `a·b + c` into an FMA), and `exp` from the pure-Rust `libm` crate, not
/// the platform's libm. So x86 with or without AVX-512, aarch64 and wasm compute bit-identical
/// logits, which a token file compressed under the prior needs (`crate::entropy`, and
/// docs/vgt-format.md for the argument).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arithmetic {
    #[default]
    Fastest,
    Portable,
}

impl Arithmetic {
    pub(crate) fn exp(self, x: f32) -> f32 {
        match self {
            Arithmetic::Fastest => x.exp(),
            Arithmetic::Portable => libm::expf(x),
        }
    }
}

/// Softmax of one head's `scores` (masked ones −∞) in place, then `out += Σ_j p_j · v_j` over
/// the value rows `values`, one per score, in order.
pub(crate) fn softmax_mix<'a>(scores: &mut [f32], max: f32, values: impl Iterator<Item = &'a [f32]>, out: &mut [f32], arithmetic: Arithmetic) {
    let mut sum = 0.0f32;
    scores.iter_mut().for_each(|s| {
        *s = arithmetic.exp(*s - max);
        sum += *s;
    });
    for (s, v) in scores.iter().zip(values) {
        let p = s / sum;
        out.iter_mut().zip(v).for_each(|(o, v)| *o += p * v);
    }
}

/// `src[rows][cols]` → `[cols][rows]`, in 32×32 blocks so both sides stay in cache.
pub(crate) fn transpose(src: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    const B: usize = 32;
    let mut out = vec![0.0f32; rows * cols];
    for r0 in (0..rows).step_by(B) {
        for c0 in (0..cols).step_by(B) {
            for r in r0..(r0 + B).min(rows) {
                for c in c0..(c0 + B).min(cols) {
                    out[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
    out
}
