//! The plain-Rust microkernel, for processors without a SIMD one here (and the tests' reference
//! order of summation).

/// The plain-Rust microkernel: `acc[r][q] += a[p][r] · b[p][q]`, in `k` order.
pub(super) unsafe fn portable<const MR: usize, const NR: usize>(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    let mut acc = [[0.0f32; NR]; MR];
    for p in 0..kc {
        let bp = &*(b.add(p * NR) as *const [f32; NR]);
        for (r, row) in acc.iter_mut().enumerate() {
            let av = *a.add(p * MR + r);
            for (v, bv) in row.iter_mut().zip(bp) {
                *v += av * bv;
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        std::ptr::copy_nonoverlapping(row.as_ptr(), tile.add(r * NR), NR);
    }
}
