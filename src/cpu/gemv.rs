//! Matrix-vector products for the prior's decoding step: one token's activations against every
//! weight row. Each weight is read once per token, so the step is bound by memory bandwidth:
//! the rows are split over the cores, and each core streams four rows at a time through
//! vector registers (AVX-512 or AVX2+FMA where the processor has them).

use half::f16;

use super::dot;
use super::threads::{parallel_rows_paced, Pace};

/// Below this many multiply-adds a product runs on one thread.
const MIN_PARALLEL_MACS: usize = 1 << 16;

/// `out[r] = Σ_i w[r·d_in + i] · x[i]` for every row of `w` (`[out.len()][x.len()]`).
pub(crate) fn gemv(w: &[f32], x: &[f32], out: &mut [f32]) {
    let d_in = x.len();
    assert_eq!(w.len(), out.len() * d_in, "gemv: {} weights for {} rows of {d_in}", w.len(), out.len());
    parallel_rows_paced(Pace::Short, out, 1, d_in, MIN_PARALLEL_MACS, |r0, part| rows(&w[r0 * d_in..][..part.len() * d_in], x, part));
}

/// [`gemv`] in [`super::Arithmetic::Portable`]: every row one plain-Rust [`dot`], whatever this
/// processor has, so the sums are the same on every machine (rows still split over the cores:
/// each row is summed by one thread, in one order).
pub(crate) fn gemv_portable(w: &[f32], x: &[f32], out: &mut [f32]) {
    let d_in = x.len();
    assert_eq!(w.len(), out.len() * d_in, "gemv: {} weights for {} rows of {d_in}", w.len(), out.len());
    parallel_rows_paced(Pace::Short, out, 1, d_in, MIN_PARALLEL_MACS, |r0, part| {
        part.iter_mut().zip(w[r0 * d_in..].chunks_exact(d_in)).for_each(|(o, row)| *o = dot(row, x))
    });
}

/// [`gemv`] with f16 weights, widened to f32 as they are loaded: the same products and sums as
/// [`gemv`] over the f32 values of the same weights, from half the bytes.
pub(crate) fn gemv_f16(w: &[f16], x: &[f32], out: &mut [f32]) {
    let d_in = x.len();
    assert_eq!(w.len(), out.len() * d_in, "gemv: {} weights for {} rows of {d_in}", w.len(), out.len());
    parallel_rows_paced(Pace::Short, out, 1, d_in, MIN_PARALLEL_MACS, |r0, part| {
        let w = &w[r0 * d_in..][..part.len() * d_in];
        match super::gemm::best_kernel() {
            // SAFETY: `best_kernel` only names instruction sets this processor has
            #[cfg(target_arch = "x86_64")]
            super::Microkernel::Avx512 => unsafe { x86::avx512_f16(w, x, part) },
            #[cfg(target_arch = "x86_64")]
            super::Microkernel::Avx2 if std::arch::is_x86_feature_detected!("f16c") => unsafe { x86::avx2_f16(w, x, part) },
            _ => {
                let mut row = vec![0.0f32; d_in];
                for (o, wr) in part.iter_mut().zip(w.chunks_exact(d_in)) {
                    row.iter_mut().zip(wr).for_each(|(r, v)| *r = v.to_f32());
                    *o = rows_one(&row, x);
                }
            }
        }
    });
}

fn rows_one(w: &[f32], x: &[f32]) -> f32 {
    let mut out = [0.0f32];
    rows(w, x, &mut out);
    out[0]
}

fn rows(w: &[f32], x: &[f32], out: &mut [f32]) {
    match super::gemm::best_kernel() {
        // SAFETY: `best_kernel` only names instruction sets this processor has
        #[cfg(target_arch = "x86_64")]
        super::Microkernel::Avx512 => unsafe { x86::avx512(w, x, out) },
        #[cfg(target_arch = "x86_64")]
        super::Microkernel::Avx2 => unsafe { x86::avx2(w, x, out) },
        _ => out.iter_mut().zip(w.chunks_exact(x.len())).for_each(|(o, row)| *o = dot(row, x)),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use half::f16;

    /// Rows of f32 weights.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512(w: &[f32], x: &[f32], out: &mut [f32]) {
        rows_avx512(|at| _mm512_loadu_ps(w.as_ptr().add(at)), |at| w[at], x, out)
    }

    /// Rows of f16 weights, widened 16 at a time (`vcvtph2ps`) to the same values.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn avx512_f16(w: &[f16], x: &[f32], out: &mut [f32]) {
        let wp = w.as_ptr() as *const u16;
        rows_avx512(|at| _mm512_cvtph_ps(_mm256_loadu_si256(wp.add(at) as *const __m256i)), |at| w[at].to_f32(), x, out)
    }

    /// Four rows per pass, each with its own accumulator, so that four FMA chains are in
    /// flight; the tail past the last multiple of 16 is summed in scalar. `load(at)` gives the 16
    /// weights from index `at`, `weight(at)` one.
    #[inline(always)]
    unsafe fn rows_avx512(load: impl Fn(usize) -> __m512, weight: impl Fn(usize) -> f32, x: &[f32], out: &mut [f32]) {
        let d = x.len();
        let body = d / 16 * 16;
        let xp = x.as_ptr();
        let tail = |r: usize| (body..d).map(|i| weight(r * d + i) * x[i]).sum::<f32>();
        let mut r = 0;
        while r + 4 <= out.len() {
            let mut acc = [_mm512_setzero_ps(); 4];
            for i in (0..body).step_by(16) {
                let xv = _mm512_loadu_ps(xp.add(i));
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = _mm512_fmadd_ps(load((r + q) * d + i), xv, *a);
                }
            }
            for (q, a) in acc.iter().enumerate() {
                out[r + q] = _mm512_reduce_add_ps(*a) + tail(r + q);
            }
            r += 4;
        }
        for (r, o) in out.iter_mut().enumerate().skip(r) {
            let mut a = _mm512_setzero_ps();
            for i in (0..body).step_by(16) {
                a = _mm512_fmadd_ps(load(r * d + i), _mm512_loadu_ps(xp.add(i)), a);
            }
            *o = _mm512_reduce_add_ps(a) + tail(r);
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(w: &[f32], x: &[f32], out: &mut [f32]) {
        rows_avx2(|at| _mm256_loadu_ps(w.as_ptr().add(at)), |at| w[at], x, out)
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    pub(super) unsafe fn avx2_f16(w: &[f16], x: &[f32], out: &mut [f32]) {
        let wp = w.as_ptr() as *const u16;
        rows_avx2(|at| _mm256_cvtph_ps(_mm_loadu_si128(wp.add(at) as *const __m128i)), |at| w[at].to_f32(), x, out)
    }

    /// [`rows_avx512`] with 8-lane registers.
    #[inline(always)]
    unsafe fn rows_avx2(load: impl Fn(usize) -> __m256, weight: impl Fn(usize) -> f32, x: &[f32], out: &mut [f32]) {
        let d = x.len();
        let body = d / 8 * 8;
        let xp = x.as_ptr();
        let sum8 = |v: __m256| {
            let mut lanes = [0.0f32; 8];
            _mm256_storeu_ps(lanes.as_mut_ptr(), v);
            lanes.iter().sum::<f32>()
        };
        let tail = |r: usize| (body..d).map(|i| weight(r * d + i) * x[i]).sum::<f32>();
        let mut r = 0;
        while r + 4 <= out.len() {
            let mut acc = [_mm256_setzero_ps(); 4];
            for i in (0..body).step_by(8) {
                let xv = _mm256_loadu_ps(xp.add(i));
                for (q, a) in acc.iter_mut().enumerate() {
                    *a = _mm256_fmadd_ps(load((r + q) * d + i), xv, *a);
                }
            }
            for (q, a) in acc.iter().enumerate() {
                out[r + q] = sum8(*a) + tail(r + q);
            }
            r += 4;
        }
        for (r, o) in out.iter_mut().enumerate().skip(r) {
            let mut a = _mm256_setzero_ps();
            for i in (0..body).step_by(8) {
                a = _mm256_fmadd_ps(load(r * d + i), _mm256_loadu_ps(xp.add(i)), a);
            }
            *o = sum8(a) + tail(r);
        }
    }
}
