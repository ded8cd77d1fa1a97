//! im2col as a source of B rows for the GEMM: each row of the column matrix is gathered from the
//! input volume while it is packed, so the whole matrix (63 MB for one of VideoGPT's 4×4×4
//! convs on a 64×64 clip) is never written out.

use super::gemm::BSource;
use super::parallel_rows;
use crate::backend::Dims;

/// A channel-first volume with zeros around it, enough that every tap of a [`Gather`] reads
/// inside: the gather then needs no bounds checks and copies whole runs.
pub(crate) struct Padded {
    data: Vec<f32>,
    /// (c, t, h, w) after padding.
    dims: [usize; 4],
    front: [usize; 3],
}

impl Padded {
    /// `x` padded for taps with these `shifts`, read over `grid` at `stride` (as in [`Gather`]).
    pub fn for_taps(x: &[f32], d: Dims, grid: [usize; 3], stride: [usize; 3], shifts: impl Iterator<Item = [isize; 3]> + Clone) -> Self {
        let size = [d.t, d.h, d.w];
        let mut front = [0usize; 3];
        let mut back = [0usize; 3];
        for a in 0..3 {
            let lo = shifts.clone().map(|s| s[a]).min().unwrap_or(0);
            let hi = shifts.clone().map(|s| s[a]).max().unwrap_or(0);
            front[a] = (-lo).max(0) as usize;
            let last_read = (grid[a].max(1) - 1) as isize * stride[a] as isize + hi;
            back[a] = (last_read - (size[a] as isize - 1)).max(0) as usize;
        }
        let (pt, ph, pw) = (d.t + front[0] + back[0], d.h + front[1] + back[1], d.w + front[2] + back[2]);
        let mut data = vec![0.0f32; d.c * pt * ph * pw];
        parallel_rows(&mut data, pt * ph * pw, d.t * d.h * d.w, 1 << 18, |c0, planes| {
            for (r, plane) in planes.chunks_exact_mut(pt * ph * pw).enumerate() {
                let src = &x[(c0 + r) * d.t * d.h * d.w..][..d.t * d.h * d.w];
                for (it, frame) in src.chunks_exact(d.h * d.w).enumerate() {
                    for (ih, line) in frame.chunks_exact(d.w).enumerate() {
                        let at = (((it + front[0]) * ph) + ih + front[1]) * pw + front[2];
                        plane[at..at + d.w].copy_from_slice(line);
                    }
                }
            }
        });
        Padded { data, dims: [d.c, pt, ph, pw], front }
    }
}

/// `B[r][(t, h, w)] = x[channel_r][t·stride + shift_r]` over an output `grid`, zero outside `x`
/// (read from its [`Padded`] copy).
pub(crate) struct Gather<'a> {
    src: &'a Padded,
    /// The columns: every (t, h, w) of this grid, w fastest.
    grid: [usize; 3],
    stride: [usize; 3],
    /// Per row: the input channel and the offset of its first read in the padded plane.
    rows: Vec<(usize, usize)>,
}

impl<'a> Gather<'a> {
    /// Rows (channel, shift); `src` must have been padded for these shifts.
    pub fn new(src: &'a Padded, grid: [usize; 3], stride: [usize; 3], rows: impl Iterator<Item = (usize, [isize; 3])>) -> Self {
        let [_, _, ph, pw] = src.dims;
        let rows = rows
            .map(|(ci, shift)| {
                let at = |a: usize| (shift[a] + src.front[a] as isize) as usize;
                (ci, (at(0) * ph + at(1)) * pw + at(2))
            })
            .collect();
        Gather { src, grid, stride, rows }
    }

    /// The taps of a convolution, rows (ci, kt, kh, kw) with shift `k − pad`.
    pub fn conv_taps(cin: usize, kernel: [usize; 3], pad: [usize; 3]) -> impl Iterator<Item = (usize, [isize; 3])> + Clone {
        let shift = move |k: usize, d: usize| k as isize - pad[d] as isize;
        (0..cin).flat_map(move |ci| {
            (0..kernel[0]).flat_map(move |kt| (0..kernel[1]).flat_map(move |kh| (0..kernel[2]).map(move |kw| (ci, [shift(kt, 0), shift(kh, 1), shift(kw, 2)]))))
        })
    }
}

impl BSource for Gather<'_> {
    fn pack(&self, p0: usize, kc: usize, j0: usize, cols: usize, nr: usize, panel: &mut [f32]) {
        // The panel's columns as runs along w, found once for all kc rows: (first column in
        // the panel, length, offset of the run's first read in a padded plane).
        let [_, pt, ph, pw] = self.src.dims;
        let [_, gh, gw] = self.grid;
        let s = self.stride;
        let mut runs = Vec::with_capacity(nr / gw.min(nr) + 2);
        let mut q = 0;
        while q < cols {
            let j = j0 + q;
            let (w0, h, t) = (j % gw, j / gw % gh, j / (gw * gh));
            let len = (gw - w0).min(cols - q);
            runs.push((q, len, (t * s[0] * ph + h * s[1]) * pw + w0 * s[2]));
            q += len;
        }
        let plane = pt * ph * pw;
        for p in 0..kc {
            let (ci, tap) = self.rows[p0 + p];
            let src = &self.src.data[ci * plane + tap..];
            let row = &mut panel[p * nr..][..nr];
            row[cols..].fill(0.0);
            for &(q0, len, at) in &runs {
                let out = &mut row[q0..q0 + len];
                if s[2] == 1 {
                    copy_run(&src[at..at + len], out);
                } else if s[2] == 2 && len == 16 {
                    // the downsampling convs' runs: every other value of 31, fixed size so the
                    // compiler turns it into shuffles
                    let pairs = <&[f32; 31]>::try_from(&src[at..at + 31]).unwrap();
                    let out = <&mut [f32; 16]>::try_from(out).unwrap();
                    for (i, v) in out.iter_mut().enumerate() {
                        *v = pairs[2 * i];
                    }
                } else {
                    out.iter_mut().enumerate().for_each(|(i, v)| *v = src[at + i * s[2]]);
                }
            }
        }
    }
}

/// `out = src`, with the run lengths of the latent grids as fixed-size copies (two or four
/// vector moves, inline) rather than calls to `memcpy`.
#[inline(always)]
fn copy_run(src: &[f32], out: &mut [f32]) {
    match out.len() {
        8 => *<&mut [f32; 8]>::try_from(out).unwrap() = *<&[f32; 8]>::try_from(src).unwrap(),
        16 => *<&mut [f32; 16]>::try_from(out).unwrap() = *<&[f32; 16]>::try_from(src).unwrap(),
        32 => *<&mut [f32; 32]>::try_from(out).unwrap() = *<&[f32; 32]>::try_from(src).unwrap(),
        _ => out.copy_from_slice(src),
    }
}

/// One output parity class of a stride-`s`, 4-tap transposed convolution (sub-pixel
/// decomposition): the outputs `o = q·s + parity` are an ordinary convolution of the input over
/// the taps `k ≡ parity + 1 (mod s)`, each reading `x[q + (parity + 1 − k)/s]`. Two taps per dim
/// for stride 2, all four for stride 1.
pub(crate) struct SubpixelClass {
    pub parity: [usize; 3],
    /// (kt, kh, kw) and the input shift of each tap.
    pub taps: Vec<([usize; 3], [isize; 3])>,
}

/// The classes of a transposed conv with kernel 4 and this stride, parity t-major.
pub(crate) fn subpixel_classes(stride: [usize; 3]) -> Vec<SubpixelClass> {
    let taps_1d = |s: usize, parity: usize| -> Vec<(usize, isize)> {
        (0..4)
            .filter(|&k| (parity as isize + 1 - k as isize).rem_euclid(s as isize) == 0)
            .map(|k| (k, (parity as isize + 1 - k as isize) / s as isize))
            .collect()
    };
    let mut classes = Vec::new();
    for pt in 0..stride[0] {
        for ph in 0..stride[1] {
            for pw in 0..stride[2] {
                let mut taps = Vec::new();
                for &(kt, st) in &taps_1d(stride[0], pt) {
                    for &(kh, sh) in &taps_1d(stride[1], ph) {
                        for &(kw, sw) in &taps_1d(stride[2], pw) {
                            taps.push(([kt, kh, kw], [st, sh, sw]));
                        }
                    }
                }
                classes.push(SubpixelClass { parity: [pt, ph, pw], taps });
            }
        }
    }
    classes
}

/// PyTorch's `[cin][cout][4][4][4]` transposed-conv weight as one `[cout][tap][cin]` matrix per
/// [`subpixel_classes`] class, concatenated: the A side of each class's GEMM.
pub(crate) fn subpixel_weight(weight: &[f32], cin: usize, cout: usize, stride: [usize; 3]) -> Vec<f32> {
    let mut out = Vec::with_capacity(weight.len());
    for class in subpixel_classes(stride) {
        for co in 0..cout {
            for &([kt, kh, kw], _) in &class.taps {
                out.extend((0..cin).map(|ci| weight[(ci * cout + co) * 64 + (kt * 4 + kh) * 4 + kw]));
            }
        }
    }
    out
}
