//! SGEMM for the CPU path, laid out as in BLIS/GotoBLAS: `A` is packed into panels of `MR` rows
//! and `B` into panels of `NR` columns, `KC` deep, so that a register-tiled microkernel streams
//! both from cache with unit stride; the columns of `C` are split over threads.
//!
//! One microkernel per instruction set, chosen once at run time: AVX-512 (12×32, 24 zmm
//! accumulators), AVX2+FMA (6×16), WebAssembly SIMD (6×8; the wasm build enables `simd128`)
//! and a portable one. The products are summed in `k` order within a `KC` block and the blocks
//! in order, so the result does not depend on the thread count.
//!
//! This file is the driver (packing, blocking, threads, the epilogue); `microkernel.rs` chooses
//! the register tile, and each instruction set's tile has a file of its own: `x86.rs` (AVX-512,
//! AVX2), `wasm.rs` (simd128) and `portable.rs`.

mod microkernel;
mod portable;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod wasm;
#[cfg(target_arch = "x86_64")]
mod x86;

pub(crate) use microkernel::best_kernel;
pub use microkernel::Microkernel;

use super::threads::{parallel_for, SharedMut};

/// Depth of one packed block: a B micro-panel (`KC × NR` floats, 32 KiB for AVX-512) stays in L1.
const KC: usize = 256;
/// Panels of A swept per block (see the loop in `gemm`).
const MC_PANELS: usize = 16;
/// Most columns of B packed at a time by one thread (a multiple of every `NR`).
const NC: usize = 1024;
/// Below this many multiply-adds a product runs on one thread.
const MIN_PARALLEL_MACS: usize = 1 << 21;

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
