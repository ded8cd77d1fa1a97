//! `.vgt`: a compact token file. A clip's VQ-VAE codes bit-packed at ⌈log2 n_codes⌉ bits each,
//! with what is needed to decode them safely: which model (an id and the first 16 bytes of the
//! SHA-256 of its `.safetensors` file, as `models/index.json` lists it), the latent shape, the
//! frame rate. A 16-frame 64×64 clip at 4×16×16 tokens of 10 bits is 1.3 KB.
//!
//! Layout, little-endian (docs/vgt-format.md has the same table):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `VGT` 0x1A |
//! | 4 | 1 | version (1) |
//! | 5 | 1 | flags: bit 0 = frame rate present |
//! | 6 | 1 | bits per index, ⌈log2 n_codes⌉ (1..=16) |
//! | 7 | 1 | length of the model id, L (0..=255) |
//! | 8 | 4 | n_codes (u32) |
//! | 12 | 8 | clips B, T', H', W' (u16 each) |
//! | 20 | 16 | model hash: SHA-256 of the model file, first 16 bytes |
//! | 36 | L | model id (UTF-8) |
//! | 36+L | 4 | frames per second (f32), when flag bit 0 |
//! | … | ⌈B·T'·H'·W'·bits / 8⌉ | indices in raster order, bit-packed LSB first |
//! | end−4 | 4 | CRC-32 (IEEE) of everything before it |

use crate::tokens::Tokens;
use crate::{bail, Result};

pub const MAGIC: [u8; 4] = *b"VGT\x1a";
pub const VERSION: u8 = 1;
const HEADER: usize = 36;
/// Tokens per file at most (a 1024-clip batch of 16×32×32 grids); more is surely corrupt.
const MAX_TOKENS: usize = 1 << 24;

#[derive(Clone, Debug, PartialEq)]
pub struct TokenFile {
    pub model_id: String,
    /// The first 16 bytes of the SHA-256 of the model's `.safetensors` file.
    pub model_hash: [u8; 16],
    pub n_codes: usize,
    pub tokens: Tokens,
    pub fps: Option<f32>,
}

/// The model hash of a `.safetensors` file's bytes.
pub fn model_hash(model_bytes: &[u8]) -> [u8; 16] {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(model_bytes);
    digest[..16].try_into().expect("16 of 32 bytes")
}

pub fn hex(hash: &[u8]) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

/// ⌈log2 n⌉, at least 1.
pub fn bits_per_index(n_codes: usize) -> u32 {
    (usize::BITS - n_codes.saturating_sub(1).leading_zeros()).max(1)
}

pub fn write(f: &TokenFile) -> Result<Vec<u8>> {
    let bits = bits_per_index(f.n_codes);
    if f.n_codes < 2 || bits > 16 {
        bail!(Input, "a .vgt file holds codebooks of 2 to 65536 codes, not {}", f.n_codes);
    }
    let id = f.model_id.as_bytes();
    if id.len() > 255 {
        bail!(Input, "model id is longer than 255 bytes");
    }
    let shape = f.tokens.shape;
    if shape.iter().any(|&d| d == 0 || d > u16::MAX as usize) || f.tokens.codes.len() != shape.iter().product::<usize>() {
        bail!(Input, "token grid {shape:?} does not fit a .vgt file (each dimension 1..=65535)");
    }
    crate::tokens::check_codes(&f.tokens, f.n_codes)?;
    let mut out = Vec::with_capacity(HEADER + id.len() + 8 + (f.tokens.codes.len() * bits as usize).div_ceil(8));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, f.fps.is_some() as u8, bits as u8, id.len() as u8]);
    out.extend_from_slice(&(f.n_codes as u32).to_le_bytes());
    for d in shape {
        out.extend_from_slice(&(d as u16).to_le_bytes());
    }
    out.extend_from_slice(&f.model_hash);
    out.extend_from_slice(id);
    if let Some(fps) = f.fps {
        out.extend_from_slice(&fps.to_le_bytes());
    }
    let (mut acc, mut filled) = (0u64, 0u32);
    for &c in &f.tokens.codes {
        acc |= (c as u64) << filled;
        filled += bits;
        while filled >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            filled -= 8;
        }
    }
    if filled > 0 {
        out.push(acc as u8);
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

pub fn read(bytes: &[u8]) -> Result<TokenFile> {
    if bytes.len() < 4 || bytes[..4] != MAGIC {
        bail!(Input, "not a .vgt token file (bad magic)");
    }
    if bytes.len() < HEADER + 4 {
        bail!(Input, "truncated .vgt file ({} bytes)", bytes.len());
    }
    if bytes[4] != VERSION {
        bail!(Input, ".vgt version {} is not supported (this build reads version {VERSION})", bytes[4]);
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        bail!(Input, "corrupt .vgt file (checksum mismatch; truncated or damaged)");
    }
    let (flags, bits, id_len) = (bytes[5], bytes[6] as u32, bytes[7] as usize);
    if flags & !1 != 0 {
        bail!(Input, "corrupt .vgt file (unknown flags {flags:#04x})");
    }
    let n_codes = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if !(2..=1 << 16).contains(&n_codes) || bits != bits_per_index(n_codes) {
        bail!(Input, "corrupt .vgt file ({n_codes} codes at {bits} bits per index)");
    }
    let dim = |i: usize| u16::from_le_bytes(bytes[12 + 2 * i..14 + 2 * i].try_into().expect("2 bytes")) as usize;
    let shape = [dim(0), dim(1), dim(2), dim(3)];
    let n: usize = shape.iter().product();
    if n == 0 || n > MAX_TOKENS {
        bail!(Input, "corrupt .vgt file (token grid {shape:?})");
    }
    let model_hash: [u8; 16] = bytes[20..36].try_into().expect("16 bytes");
    let mut at = HEADER;
    let fps_len = if flags & 1 != 0 { 4 } else { 0 };
    let packed = (n * bits as usize).div_ceil(8);
    if body.len() != at + id_len + fps_len + packed {
        bail!(Input, "corrupt .vgt file: {} bytes, expected {} for {shape:?} tokens", bytes.len(), at + id_len + fps_len + packed + 4);
    }
    let model_id =
        std::str::from_utf8(&body[at..at + id_len]).map_err(|_| crate::Error::Input("corrupt .vgt file (model id is not UTF-8)".into()))?.to_string();
    at += id_len;
    let fps = (fps_len > 0).then(|| f32::from_le_bytes(body[at..at + 4].try_into().expect("4 bytes")));
    at += fps_len;
    if fps.is_some_and(|f| !(f.is_finite() && f > 0.0)) {
        bail!(Input, "corrupt .vgt file (frame rate {})", fps.unwrap_or_default());
    }
    let mask = (1u64 << bits) - 1;
    let (mut acc, mut filled, mut codes) = (0u64, 0u32, Vec::with_capacity(n));
    for &b in &body[at..] {
        acc |= (b as u64) << filled;
        filled += 8;
        while filled >= bits && codes.len() < n {
            codes.push((acc & mask) as u32);
            acc >>= bits;
            filled -= bits;
        }
    }
    // the writer zeroes the last byte's unused high bits: anything else there is damage (and
    // would make two different files decode to the same tokens)
    if acc != 0 {
        bail!(Input, "corrupt .vgt file (nonzero padding bits after the last index)");
    }
    let tokens = Tokens { shape, codes };
    crate::tokens::check_codes(&tokens, n_codes).map_err(|_| crate::Error::Input("corrupt .vgt file (an index is past the codebook)".into()))?;
    Ok(TokenFile { model_id, model_hash, n_codes, tokens, fps })
}

impl TokenFile {
    /// Refuse to decode with a model other than the one the tokens were made with.
    pub fn check_model(&self, model_bytes: &[u8], n_codes: usize) -> Result<()> {
        self.check_hash(&model_hash(model_bytes), n_codes)
    }

    /// As [`TokenFile::check_model`], for a model whose file hash is already known.
    pub fn check_hash(&self, hash: &[u8; 16], n_codes: usize) -> Result<()> {
        if self.n_codes != n_codes {
            bail!(Input, "these tokens index {} codes (model {}); this model has {n_codes}", self.n_codes, self.model_id);
        }
        if *hash != self.model_hash {
            bail!(
                Input,
                "these tokens were made with model {} ({}), not this one ({}): decoding them with it would give garbage",
                self.model_id,
                hex(&self.model_hash),
                hex(hash)
            );
        }
        Ok(())
    }
}
