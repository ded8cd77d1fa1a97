//! Token grids: the VQ-VAE's codebook indices of one or more clips, B×T'×H'×W'.

use crate::{bail, Result};

#[derive(Clone, Debug, PartialEq)]
pub struct Tokens {
    /// `[B, T', H', W']`
    pub shape: [usize; 4],
    pub codes: Vec<u32>,
}

impl Tokens {
    pub fn clips(&self) -> impl Iterator<Item = &[u32]> {
        self.codes.chunks_exact(self.shape[1..].iter().product::<usize>().max(1))
    }
    pub fn latent(&self) -> [usize; 3] {
        [self.shape[1], self.shape[2], self.shape[3]]
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub mod npy {
    use std::io::{Read, Write};

    use npyz::WriterBuilder;

    use super::Tokens;
    use crate::{bail, Error, Result};

    /// Writes int32 `T'×H'×W'` for one clip, `B×T'×H'×W'` for several.
    pub fn write<W: Write>(out: &mut W, t: &Tokens) -> Result<()> {
        let shape: Vec<u64> = if t.shape[0] == 1 { &t.shape[1..] } else { &t.shape[..] }.iter().map(|&d| d as u64).collect();
        let mut w = npyz::WriteOptions::<i32>::new().default_dtype().shape(&shape).writer(out).begin_nd()?;
        w.extend(t.codes.iter().map(|&c| c as i32))?;
        w.finish()?;
        Ok(())
    }

    /// Reads any integer .npy of rank 3 (one clip) or 4 (a batch).
    pub fn read<R: Read>(r: R) -> Result<Tokens> {
        let npy = npyz::NpyFile::new(r).map_err(|e| Error::Input(format!("not a readable .npy file ({e})")))?;
        let dims: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
        let shape = match dims[..] {
            [t, h, w] => [1, t, h, w],
            [b, t, h, w] => [b, t, h, w],
            _ => bail!(Input, "a token .npy must be T'×H'×W' or B×T'×H'×W', got shape {dims:?}"),
        };
        if shape.contains(&0) || shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).is_none_or(|n| n > 1 << 28) {
            bail!(Input, "token grid {shape:?} is empty or too large");
        }
        let descr = npy.dtype().descr();
        let bad = |e: std::io::Error| Error::Input(format!("truncated or corrupt token .npy ({e})"));
        let values: Vec<i64> = match descr.trim_matches('\'').trim_start_matches(['<', '|', '=']) {
            "i4" => npy.into_vec::<i32>().map_err(bad)?.into_iter().map(i64::from).collect(),
            "i8" => npy.into_vec::<i64>().map_err(bad)?,
            "u2" => npy.into_vec::<u16>().map_err(bad)?.into_iter().map(i64::from).collect(),
            "i2" => npy.into_vec::<i16>().map_err(bad)?.into_iter().map(i64::from).collect(),
            "u4" => npy.into_vec::<u32>().map_err(bad)?.into_iter().map(i64::from).collect(),
            _ => bail!(Input, "token .npy has dtype {descr}; expected a little-endian integer type (int32 or int64)"),
        };
        let codes = values
            .into_iter()
            .map(|v| u32::try_from(v).map_err(|_| Error::Input(format!("token {v} is negative or too large"))))
            .collect::<Result<Vec<u32>>>()?;
        Ok(Tokens { shape, codes })
    }
}

/// Check a token grid against a model's codebook size and latent factors.
pub fn check_codes(t: &Tokens, n_codes: usize) -> Result<()> {
    // checked: on wasm32 a crafted shape could wrap around in 32 bits
    if t.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) != Some(t.codes.len()) || t.shape.contains(&0) {
        bail!(Input, "{} tokens do not fill a {}×{}×{}×{} grid", t.codes.len(), t.shape[0], t.shape[1], t.shape[2], t.shape[3]);
    }
    check_range(&t.codes, n_codes)
}

/// Every code below `n_codes`: the one check of a token's range, for grids, prefixes, files and
/// comparisons alike (tokens come from files and pages, so none is trusted).
pub fn check_range(codes: &[u32], n_codes: usize) -> Result<()> {
    if let Some((at, &bad)) = codes.iter().enumerate().find(|(_, &c)| c as usize >= n_codes) {
        bail!(Input, "token {bad} (position {at}) is out of range for a codebook of {n_codes} codes (wrong model for these tokens?)");
    }
    Ok(())
}
