//! SGEMM for the CPU path, laid out as in BLIS/GotoBLAS: `A` is packed into panels of `MR` rows
//! and `B` into panels of `NR` columns, `KC` deep, so that a register-tiled microkernel streams
//! both from cache with unit stride; the columns of `C` are split over threads.
//!
//! One microkernel per instruction set, chosen once at run time: AVX-512 (12×32, 24 zmm
//! accumulators), AVX2+FMA (6×16), WebAssembly SIMD (6×8; the wasm build enables `simd128`)
//! and a portable one. The products are summed in `k` order within a `KC` block and the blocks
//! in order, so the result does not depend on the thread count.

use super::threads::{parallel_for, SharedMut};

/// Depth of one packed block: a B micro-panel (`KC × NR` floats, 32 KiB for AVX-512) stays in L1.
const KC: usize = 256;
/// Panels of A swept per block (see the loop in `gemm`).
const MC_PANELS: usize = 16;
/// Most columns of B packed at a time by one thread (a multiple of every `NR`).
const NC: usize = 1024;
/// Below this many multiply-adds a product runs on one thread.
const MIN_PARALLEL_MACS: usize = 1 << 21;

/// The register tile of one instruction set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Microkernel {
    /// x86-64 with AVX-512F: 12 rows × 32 columns (24 of the 32 zmm registers accumulate).
    Avx512,
    /// x86-64 with AVX2 and FMA: 6 rows × 16 columns.
    Avx2,
    /// wasm32 built with `simd128`: 6 rows × 8 columns, multiply then add (no FMA in core wasm SIMD).
    Simd128,
    /// Anything else: 4 rows × 8 columns in plain Rust.
    Portable,
}

impl Microkernel {
    /// The fastest microkernel this processor runs.
    pub fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Microkernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Microkernel::Avx2;
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            return Microkernel::Simd128;
        }
        #[allow(unreachable_code)]
        Microkernel::Portable
    }

    /// Whether this processor can run it.
    pub fn is_supported(self) -> bool {
        match self {
            Microkernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Microkernel::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Microkernel::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            Microkernel::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// (rows, columns) of its register tile.
    fn tile(self) -> (usize, usize) {
        match self {
            Microkernel::Avx512 => (12, 32),
            Microkernel::Avx2 => (6, 16),
            Microkernel::Simd128 => (6, 8),
            Microkernel::Portable => (4, 8),
        }
    }

    /// `tile[MR×NR] = Σ_p a[p][MR] ⊗ b[p][NR]` over `kc` packed steps.
    ///
    /// # Safety
    /// `a` holds `kc·MR` floats, `b` `kc·NR`, `tile` `MR·NR`, and the processor supports `self`.
    unsafe fn run(self, kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Microkernel::Avx512 => x86::avx512_nx32::<12>(kc, a, b, tile),
            #[cfg(target_arch = "x86_64")]
            Microkernel::Avx2 => x86::avx2_6x16(kc, a, b, tile),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Microkernel::Simd128 => wasm::simd128_6x8(kc, a, b, tile),
            Microkernel::Portable => portable::<4, 8>(kc, a, b, tile),
            #[allow(unreachable_patterns)]
            _ => unreachable!("{self:?} is not compiled for this target"),
        }
    }
}

/// `c[m×n] = beta·c + a[m×k] · b[k×n]`, each matrix given by its row and column strides (in
/// floats), with the fastest microkernel for this processor.
#[allow(clippy::too_many_arguments)]
pub fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
) {
    sgemm_with(best_kernel(), m, k, n, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc);
}

/// [`sgemm`] with a given microkernel (the tests run each one the processor supports).
///
/// # Panics
/// If a stride would reach outside its slice, or the processor does not support `kernel`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_with(
    kernel: Microkernel,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &[f32],
    rsb: isize,
    csb: isize,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
) {
    assert!(rsb >= 0 && csb >= 0, "negative strides are not supported");
    if m > 0 && n > 0 && k > 0 {
        assert!((k - 1) * rsb as usize + (n - 1) * (csb as usize) < b.len(), "b is too short for its strides");
    }
    gemm(kernel, m, k, n, a, rsa, csa, &Strided { b, rs: rsb as usize, cs: csb as usize }, beta, c, rsc, csc, &Epilogue::default());
}

/// What is applied to each element of C as its last block is written, in this order:
/// `relu(c + row_bias[i] + col_bias[j] + residual[i·rsc + j])`, so a layer's output is written once.
#[derive(Default)]
pub(crate) struct Epilogue<'a> {
    pub row_bias: Option<&'a [f32]>,
    pub col_bias: Option<&'a [f32]>,
    /// Laid out as C (row-major, `csc == 1`).
    pub residual: Option<&'a [f32]>,
    pub relu: bool,
}

impl Epilogue<'_> {
    fn is_empty(&self) -> bool {
        self.row_bias.is_none() && self.col_bias.is_none() && self.residual.is_none() && !self.relu
    }

    /// Applied to `dst`, the finished part of row `row` of C from column `col0`, which starts at
    /// element `at` of C: in separate passes over the row, each of which vectorises.
    fn apply(&self, dst: &mut [f32], row: usize, col0: usize, at: usize) {
        if let Some(b) = self.row_bias {
            let b = b[row];
            dst.iter_mut().for_each(|v| *v += b);
        }
        if let Some(b) = self.col_bias {
            dst.iter_mut().zip(&b[col0..]).for_each(|(v, b)| *v += b);
        }
        if let Some(res) = self.residual {
            dst.iter_mut().zip(&res[at..]).for_each(|(v, r)| *v += r);
        }
        if self.relu {
            dst.iter_mut().for_each(|v| *v = v.max(0.0));
        }
    }
}

/// Where the rows of B come from when they are packed: a strided matrix, or a gather such as
/// im2col, which then never exists as a whole.
pub(crate) trait BSource: Sync {
    /// Packs rows `p0 .. p0 + kc` and columns `j0 .. j0 + cols` as `panel[p][nr]`, zero past
    /// `cols`.
    fn pack(&self, p0: usize, kc: usize, j0: usize, cols: usize, nr: usize, panel: &mut [f32]);
}

/// B as a strided matrix.
pub(crate) struct Strided<'a> {
    pub b: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl BSource for Strided<'_> {
    fn pack(&self, p0: usize, kc: usize, j0: usize, cols: usize, nr: usize, panel: &mut [f32]) {
        if self.rs != 1 || self.cs == 1 {
            // row-major (or general): row by row
            for p in 0..kc {
                let row = &mut panel[p * nr..][..nr];
                self.row(p0 + p, j0, &mut row[..cols]);
                row[cols..].fill(0.0);
            }
            return;
        }
        // a transposed matrix (B = Mᵀ, e.g. a weight used as Wᵀ): read each column's kc values
        // where they are contiguous, and write them down the panel
        panel[..kc * nr].fill(0.0);
        for q in 0..cols {
            let column = &self.b[(j0 + q) * self.cs + p0..][..kc];
            for (p, v) in column.iter().enumerate() {
                panel[p * nr + q] = *v;
            }
        }
    }
}

impl Strided<'_> {
    /// `B[p][j0 .. j0 + dst.len()]`.
    fn row(&self, p: usize, j0: usize, dst: &mut [f32]) {
        let src = p * self.rs + j0 * self.cs;
        if self.cs == 1 {
            dst.copy_from_slice(&self.b[src..src + dst.len()]);
        } else {
            dst.iter_mut().enumerate().for_each(|(q, v)| *v = self.b[src + q * self.cs]);
        }
    }
}

/// `c[m×n] = beta·c + a[m×k] · B[k×n]`, the rows of B from `b` (the caller checks that `b`
/// covers k × n).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_from(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &impl BSource,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
    epilogue: &Epilogue,
) {
    gemm(best_kernel(), m, k, n, a, rsa, csa, b, beta, c, rsc, csc, epilogue)
}

/// The microkernel [`sgemm`] and the GEMVs use, found once: [`Microkernel::best`], unless
/// `VIDEOGPT_CPU_KERNEL` names another this processor runs (`avx512`, `avx2`, `portable`): the
/// tests run the PyTorch goldens through each. The CLI checks the variable with
/// [`Microkernel::from_env`] before any work, so a typo is an error there, not a silent fallback;
/// a library caller that skipped that check gets a panic that says the same.
pub(crate) fn best_kernel() -> Microkernel {
    static BEST: std::sync::OnceLock<Microkernel> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| match Microkernel::from_env() {
        Ok(named) => named.unwrap_or_else(Microkernel::best),
        Err(e) => panic!("{e}"),
    })
}

impl Microkernel {
    const NAMED: [(&'static str, Microkernel); 4] =
        [("avx512", Microkernel::Avx512), ("avx2", Microkernel::Avx2), ("simd128", Microkernel::Simd128), ("portable", Microkernel::Portable)];

    /// Its name, as `VIDEOGPT_CPU_KERNEL` spells it.
    pub fn name(self) -> &'static str {
        Self::NAMED.iter().find(|(_, k)| *k == self).map_or("portable", |(n, _)| n)
    }

    /// The kernels this processor runs, fastest first.
    pub fn supported() -> Vec<Microkernel> {
        Self::NAMED.iter().map(|&(_, k)| k).filter(|k| k.is_supported()).collect()
    }

    /// The kernel `VIDEOGPT_CPU_KERNEL` asks for: `None` when it is unset or empty; an error
    /// naming the variable and this processor's kernels when it names none of them.
    pub fn from_env() -> crate::Result<Option<Microkernel>> {
        let Ok(value) = std::env::var("VIDEOGPT_CPU_KERNEL") else { return Ok(None) };
        if value.is_empty() {
            return Ok(None);
        }
        let here = || Self::supported().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
        match Self::NAMED.iter().find(|(n, _)| *n == value) {
            Some(&(_, k)) if k.is_supported() => Ok(Some(k)),
            Some(_) => {
                Err(crate::Error::Input(format!("VIDEOGPT_CPU_KERNEL={value}: this processor cannot run that kernel (this processor runs: {})", here())))
            }
            None => Err(crate::Error::Input(format!("VIDEOGPT_CPU_KERNEL={value} names no kernel (this processor runs: {})", here()))),
        }
    }

    /// The kernel the CPU path uses in this process.
    pub fn in_use() -> Microkernel {
        best_kernel()
    }
}

#[allow(clippy::too_many_arguments)]
fn gemm(
    kernel: Microkernel,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    rsa: isize,
    csa: isize,
    b: &impl BSource,
    beta: f32,
    c: &mut [f32],
    rsc: isize,
    csc: isize,
    epilogue: &Epilogue,
) {
    if let Some(r) = epilogue.residual {
        assert!(csc == 1 && (m - 1) * rsc as usize + n <= r.len(), "the residual must cover a row-major c");
    }
    assert!(kernel.is_supported(), "{kernel:?} does not run on this processor");
    if m == 0 || n == 0 {
        return;
    }
    let reach = |rows: usize, cols: usize, rs: isize, cs: isize| {
        assert!(rs >= 0 && cs >= 0, "negative strides are not supported");
        (rows - 1) * rs as usize + (cols - 1) * cs as usize
    };
    assert!(reach(m, n, rsc, csc) < c.len(), "c is too short for its strides");
    if k == 0 {
        scale_c(m, n, beta, c, rsc, csc);
        return;
    }
    assert!(reach(m, k, rsa, csa) < a.len(), "a is too short for its strides");

    let (mr, nr) = kernel.tile();
    let m_panels = m.div_ceil(mr);
    // A, packed once for every k block and shared by the threads: block p0 starts at
    // p0·m_panels·MR, and within it panel i at i·MR·kc, laid out [kc][MR]
    let mut apack = vec![0.0f32; m_panels * mr * k];
    let a_ptr = SharedMut(apack.as_mut_ptr());
    let k_blocks = k.div_ceil(KC);
    // one task per (k block, panel), over the cores: the packed A is as large as the weights
    parallel_for(k_blocks * m_panels, m * k, MIN_PARALLEL_MACS / 8, |task| {
        let (p0, i) = (task / m_panels * KC, task % m_panels);
        let kc = KC.min(k - p0);
        // SAFETY: each task writes its own panel of its own block
        let panel = unsafe { std::slice::from_raw_parts_mut(a_ptr.get().add(p0 * m_panels * mr + i * mr * kc), mr * kc) };
        let rows = mr.min(m - i * mr);
        for p in 0..kc {
            for r in 0..rows {
                panel[p * mr + r] = a[(i * mr + r) * rsa as usize + (p0 + p) * csa as usize];
            }
        }
    });

    // the columns, in runs of whole B panels, one run per task: at most NC wide, and narrower
    // where that gives each thread a share (the latent grids are only ~1,000 positions)
    let threads = if m * n * k >= MIN_PARALLEL_MACS { super::thread_count() } else { 1 };
    let col_tasks = threads * n.div_ceil(threads * NC);
    let nc_max = n.div_ceil(col_tasks).next_multiple_of(nr);
    let col_tasks = n.div_ceil(nc_max);
    let c_ptr = SharedMut(c.as_mut_ptr());
    let apack = &apack;
    parallel_for(col_tasks, m * n * k, MIN_PARALLEL_MACS, |task| {
        let j0 = task * nc_max;
        let nc = nc_max.min(n - j0);
        let n_panels = nc.div_ceil(nr);
        let mut bpack = vec![0.0f32; n_panels * nr * KC.min(k)];
        let mut tile = vec![0.0f32; mr * nr];
        for p0 in (0..k).step_by(KC) {
            let kc = KC.min(k - p0);
            for (j, panel) in bpack[..n_panels * nr * kc].chunks_exact_mut(nr * kc).enumerate() {
                let cols = nr.min(nc - j * nr);
                b.pack(p0, kc, j0 + j * nr, cols, nr, panel);
            }
            // A in blocks of MC_PANELS panels (≤ 128 rows × KC, 128 KiB: stays in L2), each
            // swept over every B micro-panel (in L1 while its block runs)
            for (i_block, j) in (0..m_panels).step_by(MC_PANELS).flat_map(|ib| (0..n_panels).map(move |j| (ib, j))) {
                let cols = nr.min(nc - j * nr);
                let bp = &bpack[j * nr * kc..][..nr * kc];
                for i in i_block..(i_block + MC_PANELS).min(m_panels) {
                    let rows = mr.min(m - i * mr);
                    let ap = &apack[p0 * m_panels * mr + i * mr * kc..][..mr * kc];
                    // SAFETY: the packed panels and the tile have the sizes `run` needs
                    unsafe { kernel.run(kc, ap.as_ptr(), bp.as_ptr(), tile.as_mut_ptr()) };
                    for r in 0..rows {
                        let base = (i * mr + r) * rsc as usize + (j0 + j * nr) * csc as usize;
                        let tile_row = &tile[r * nr..][..cols];
                        // SAFETY: inside `c` (checked above); this task alone owns columns
                        // [j0, j0 + nc) of every row
                        if csc == 1 {
                            let dst = unsafe { std::slice::from_raw_parts_mut(c_ptr.get().add(base), cols) };
                            if p0 > 0 || beta == 1.0 {
                                dst.iter_mut().zip(tile_row).for_each(|(v, t)| *v += t);
                            } else if beta == 0.0 {
                                dst.copy_from_slice(tile_row);
                            } else {
                                dst.iter_mut().zip(tile_row).for_each(|(v, t)| *v = beta * *v + t);
                            }
                            if p0 + kc == k {
                                epilogue.apply(dst, i * mr + r, j0 + j * nr, base);
                            }
                        } else {
                            assert!(epilogue.is_empty(), "an epilogue needs a row-major c");
                            for (q, &t) in tile_row.iter().enumerate() {
                                let v = unsafe { &mut *c_ptr.get().add(base + q * csc as usize) };
                                *v = if p0 > 0 {
                                    *v + t
                                } else if beta == 0.0 {
                                    t
                                } else {
                                    beta * *v + t
                                };
                            }
                        }
                    }
                }
            }
        }
    });
}

fn scale_c(m: usize, n: usize, beta: f32, c: &mut [f32], rsc: isize, csc: isize) {
    for i in 0..m {
        for j in 0..n {
            let v = &mut c[i * rsc as usize + j * csc as usize];
            *v = if beta == 0.0 { 0.0 } else { beta * *v };
        }
    }
}

/// The plain-Rust microkernel: `acc[r][q] += a[p][r] · b[p][q]`, in `k` order.
unsafe fn portable<const MR: usize, const NR: usize>(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
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

#[cfg(target_arch = "x86_64")]
mod x86 {
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
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm {
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
}
