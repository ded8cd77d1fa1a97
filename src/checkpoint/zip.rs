//! The stored entries of a zip file: what torch's checkpoint archives need (the central
//! directory, zip64 sizes and offsets; entries uncompressed, as torch writes them).

use std::collections::HashMap;

use crate::{bail, Error, Result};

/// The stored entries of a zip file by name (torch writes them uncompressed). Hand-rolled rather
/// than the `zip` crate, which pulls `getrandom` and does not build for wasm32-unknown-unknown
/// without a custom backend; torch's archives need only the central directory and zip64 sizes.
pub fn entries(b: &[u8]) -> Result<HashMap<String, &[u8]>> {
    let u16_at = |o: usize| b.get(o..o + 2).map(|s| u16::from_le_bytes([s[0], s[1]]) as u64);
    let u32_at = |o: usize| b.get(o..o + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap()) as u64);
    let u64_at = |o: usize| b.get(o..o + 8).map(|s| u64::from_le_bytes(s.try_into().unwrap()));
    let bad = || Error::Weights("the checkpoint's zip directory is damaged (truncated file?)".into());
    // end of central directory: the last PK\5\6 within the comment's reach of the end
    let search_from = b.len().saturating_sub(22 + 65_535);
    let eocd = (search_from..b.len().saturating_sub(21)).rev().find(|&i| b[i..].starts_with(b"PK\x05\x06")).ok_or_else(bad)?;
    let (mut count, mut cd_offset) = (u16_at(eocd + 10).ok_or_else(bad)?, u32_at(eocd + 16).ok_or_else(bad)?);
    if (count == 0xFFFF || cd_offset == 0xFFFF_FFFF) && eocd >= 20 && b[eocd - 20..].starts_with(b"PK\x06\x07") {
        let z64 = u64_at(eocd - 20 + 8).ok_or_else(bad)? as usize;
        if !b.get(z64..).is_some_and(|s| s.starts_with(b"PK\x06\x06")) {
            return Err(bad());
        }
        count = u64_at(z64 + 32).ok_or_else(bad)?;
        cd_offset = u64_at(z64 + 48).ok_or_else(bad)?;
    }
    if count > 1 << 20 {
        bail!(Weights, "the checkpoint's zip lists {count} entries (at most {})", 1 << 20);
    }
    let mut entries = HashMap::new();
    let mut p = usize::try_from(cd_offset).map_err(|_| bad())?;
    for _ in 0..count {
        if !b.get(p..).is_some_and(|s| s.starts_with(b"PK\x01\x02")) {
            return Err(bad());
        }
        let method = u16_at(p + 10).ok_or_else(bad)?;
        let mut csize = u32_at(p + 20).ok_or_else(bad)?;
        let mut usize_ = u32_at(p + 24).ok_or_else(bad)?;
        let (nlen, xlen, clen) = (u16_at(p + 28).ok_or_else(bad)? as usize, u16_at(p + 30).ok_or_else(bad)? as usize, u16_at(p + 32).ok_or_else(bad)? as usize);
        let mut local = u32_at(p + 42).ok_or_else(bad)?;
        let name = b.get(p + 46..p + 46 + nlen).ok_or_else(bad)?;
        let name = String::from_utf8_lossy(name).into_owned();
        // zip64 extra field: the 64-bit values of the fields that read 0xFFFFFFFF, in order
        let mut x = p + 46 + nlen;
        let xend = x + xlen;
        while x + 4 <= xend {
            let (id, len) = (u16_at(x).ok_or_else(bad)?, u16_at(x + 2).ok_or_else(bad)? as usize);
            if id == 1 {
                let mut f = x + 4;
                for v in [&mut usize_, &mut csize, &mut local] {
                    if *v == 0xFFFF_FFFF {
                        *v = u64_at(f).ok_or_else(bad)?;
                        f += 8;
                    }
                }
            }
            x += 4 + len;
        }
        p = xend + clen;
        if method != 0 {
            bail!(Weights, "zip entry {name} is compressed (method {method}); torch.save writes stored entries — load and save it again with torch.save");
        }
        if csize != usize_ {
            return Err(bad());
        }
        let l = usize::try_from(local).map_err(|_| bad())?;
        if !b.get(l..).is_some_and(|s| s.starts_with(b"PK\x03\x04")) {
            return Err(bad());
        }
        let start = l + 30 + u16_at(l + 26).ok_or_else(bad)? as usize + u16_at(l + 28).ok_or_else(bad)? as usize;
        let end = usize::try_from(csize).ok().and_then(|n| start.checked_add(n)).filter(|&e| e <= b.len()).ok_or_else(bad)?;
        entries.insert(name, &b[start..end]);
    }
    Ok(entries)
}
