//! The WebAssembly SIMD microkernel (6×8), for the wasm build (which enables `simd128`).

use core::arch::wasm32::*;

/// `a·b + c`, rounded twice: core wasm SIMD has no fused multiply-add.
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_add(c, f32x4_mul(a, b))
}

/// Relaxed SIMD's multiply-add, which an engine may fuse (one rounding) or not: only in a
/// build made to measure it (`RUSTFLAGS=-Ctarget-feature=+simd128,+relaxed-simd`), because
/// its tokens would depend on the browser (docs/performance.md).
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_relaxed_madd(a, b, c)
}

/// 6 rows × 8 columns: twelve v128 accumulators, which fit the 16 xmm registers the
/// engines map wasm SIMD to.
pub(super) unsafe fn simd128_6x8(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    let mut acc = [[f32x4_splat(0.0); 2]; 6];
    for p in 0..kc {
        let b0 = v128_load(b.add(p * 8) as *const v128);
        let b1 = v128_load(b.add(p * 8 + 4) as *const v128);
        for (r, row) in acc.iter_mut().enumerate() {
            let av = f32x4_splat(*a.add(p * 6 + r));
            row[0] = madd(av, b0, row[0]);
            row[1] = madd(av, b1, row[1]);
        }
    }
    for (r, row) in acc.iter().enumerate() {
        v128_store(tile.add(r * 8) as *mut v128, row[0]);
        v128_store(tile.add(r * 8 + 4) as *mut v128, row[1]);
    }
}
