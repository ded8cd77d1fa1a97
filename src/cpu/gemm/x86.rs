//! The x86-64 microkernels: AVX-512F (12×32) and AVX2 + FMA (6×16).

use std::arch::x86_64::*;

/// MR rows × 32 columns: per step two loads of B, MR broadcasts of A, 2·MR FMAs.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn avx512_nx32<const MR: usize>(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    let mut acc = [[_mm512_setzero_ps(); 2]; MR];
    for p in 0..kc {
        let b0 = _mm512_loadu_ps(b.add(p * 32));
        let b1 = _mm512_loadu_ps(b.add(p * 32 + 16));
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm512_set1_ps(*a.add(p * MR + r));
            row[0] = _mm512_fmadd_ps(av, b0, row[0]);
            row[1] = _mm512_fmadd_ps(av, b1, row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        _mm512_storeu_ps(tile.add(r * 32), row[0]);
        _mm512_storeu_ps(tile.add(r * 32 + 16), row[1]);
    }
}

/// 6 rows × 16 columns: per step two loads of B, six broadcasts of A, twelve FMAs.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn avx2_6x16(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    let mut acc = [[_mm256_setzero_ps(); 2]; 6];
    for p in 0..kc {
        let b0 = _mm256_loadu_ps(b.add(p * 16));
        let b1 = _mm256_loadu_ps(b.add(p * 16 + 8));
        for (r, row) in acc.iter_mut().enumerate() {
            let av = _mm256_broadcast_ss(&*a.add(p * 6 + r));
            row[0] = _mm256_fmadd_ps(av, b0, row[0]);
            row[1] = _mm256_fmadd_ps(av, b1, row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        _mm256_storeu_ps(tile.add(r * 16), row[0]);
        _mm256_storeu_ps(tile.add(r * 16 + 8), row[1]);
    }
}
