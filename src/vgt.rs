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
//!
//! Version 2 holds the tokens coded under a prior ([`crate::entropy`]): about the prior's bits
//! per token instead of ⌈log2 n_codes⌉, decodable only with that prior, which the file names by
//! the hash of its file as it names the model:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `VGT` 0x1A |
//! | 4 | 1 | version (2) |
//! | 5 | 1 | flags: bit 0 = frame rate present, bit 1 = tokens coded under a prior (set) |
//! | 6 | 1 | length of the model id, L (0..=255) |
//! | 7 | 8 | clips B, T', H', W' (u16 each) |
//! | 15 | 16 | model hash |
//! | 31 | 16 | prior hash: SHA-256 of the prior's file, first 16 bytes |
//! | 47 | L | model id (UTF-8) |
//! | 47+L | 4 | frames per second (f32), when flag bit 0 |
//! | … | 4·W | the range coder's W words (u32) |
//! | end−8 | 4 | CRC-32 (IEEE) of the decoded tokens (u32 each, in raster order) |
//! | end−4 | 4 | CRC-32 (IEEE) of everything before it |
//!
//! The codebook size is the prior's. The file's checksum is checked before any decoding; the
//! tokens' checksum after it, so that a decoder that computed other probabilities than the
//! encoder (and so decoded other tokens from intact bytes) gets an error, not another clip.

use crate::gpt::Gpt;
use crate::tokens::Tokens;
use crate::{bail, Result};

pub const MAGIC: [u8; 4] = *b"VGT\x1a";
pub const VERSION: u8 = 1;
/// The version of files whose tokens are coded under a prior.
pub const VERSION_CODED: u8 = 2;
const HEADER: usize = 36;
const HEADER_CODED: usize = 47;
const FLAG_FPS: u8 = 1;
const FLAG_CODED: u8 = 2;
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

/// The model id's bytes, after checking that the id and the token grid fit a header (both
/// versions store them alike).
fn writable_id_and_grid(f: &TokenFile) -> Result<&[u8]> {
    let id = f.model_id.as_bytes();
    if id.len() > 255 {
        bail!(Input, "model id is longer than 255 bytes");
    }
    let shape = f.tokens.shape;
    if shape.iter().any(|&d| d == 0 || d > u16::MAX as usize) || f.tokens.codes.len() != shape.iter().product::<usize>() {
        bail!(Input, "token grid {shape:?} does not fit a .vgt file (each dimension 1..=65535)");
    }
    Ok(id)
}

/// B, T', H', W' as u16 each.
fn push_grid(out: &mut Vec<u8>, shape: [usize; 4]) {
    shape.iter().for_each(|&d| out.extend_from_slice(&(d as u16).to_le_bytes()));
}

/// The model id, then the frame rate when there is one.
fn push_id_and_fps(out: &mut Vec<u8>, id: &[u8], fps: Option<f32>) {
    out.extend_from_slice(id);
    if let Some(fps) = fps {
        out.extend_from_slice(&fps.to_le_bytes());
    }
}

/// The grid stored at `at` (B, T', H', W', u16 each), refused when empty or past the token limit.
fn read_grid(bytes: &[u8], at: usize) -> Result<[usize; 4]> {
    let dim = |i: usize| u16::from_le_bytes(bytes[at + 2 * i..at + 2 + 2 * i].try_into().expect("2 bytes")) as usize;
    let shape = [dim(0), dim(1), dim(2), dim(3)];
    let n: usize = shape.iter().product();
    if n == 0 || n > MAX_TOKENS {
        bail!(Input, "corrupt .vgt file (token grid {shape:?})");
    }
    Ok(shape)
}

/// The model id of `id_len` bytes at `at`, then the frame rate when `has_fps`: UTF-8, and a
/// finite positive rate, or an error.
fn read_id_and_fps(bytes: &[u8], at: usize, id_len: usize, has_fps: bool) -> Result<(String, Option<f32>)> {
    let model_id =
        std::str::from_utf8(&bytes[at..at + id_len]).map_err(|_| crate::Error::Input("corrupt .vgt file (model id is not UTF-8)".into()))?.to_string();
    let fps = has_fps.then(|| f32::from_le_bytes(bytes[at + id_len..at + id_len + 4].try_into().expect("4 bytes")));
    if fps.is_some_and(|f| !(f.is_finite() && f > 0.0)) {
        bail!(Input, "corrupt .vgt file (frame rate {})", fps.unwrap_or_default());
    }
    Ok((model_id, fps))
}

pub fn write(f: &TokenFile) -> Result<Vec<u8>> {
    let bits = bits_per_index(f.n_codes);
    if f.n_codes < 2 || bits > 16 {
        bail!(Input, "a .vgt file holds codebooks of 2 to 65536 codes, not {}", f.n_codes);
    }
    let id = writable_id_and_grid(f)?;
    crate::tokens::check_codes(&f.tokens, f.n_codes)?;
    let mut out = Vec::with_capacity(HEADER + id.len() + 8 + (f.tokens.codes.len() * bits as usize).div_ceil(8));
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION, f.fps.is_some() as u8, bits as u8, id.len() as u8]);
    out.extend_from_slice(&(f.n_codes as u32).to_le_bytes());
    push_grid(&mut out, f.tokens.shape);
    out.extend_from_slice(&f.model_hash);
    push_id_and_fps(&mut out, id, f.fps);
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

/// A prior that codes token files (version 2): the GPT and the hash of its file.
pub struct CodingPrior<'a> {
    pub gpt: &'a Gpt,
    pub hash: [u8; 16],
}

impl<'a> CodingPrior<'a> {
    /// The GPT loaded from `file_bytes`.
    pub fn new(gpt: &'a Gpt, file_bytes: &[u8]) -> Self {
        CodingPrior { gpt, hash: model_hash(file_bytes) }
    }
}

/// What a `.vgt` file's header says, read without decoding its tokens (which, in version 2,
/// needs the prior).
#[derive(Clone, Debug, PartialEq)]
pub struct Header {
    pub version: u8,
    pub model_id: String,
    pub model_hash: [u8; 16],
    /// `[B, T', H', W']`.
    pub shape: [usize; 4],
    pub fps: Option<f32>,
    /// The hash of the prior the tokens are coded under (version 2).
    pub prior_hash: Option<[u8; 16]>,
    /// Bytes of the tokens themselves: bit-packed (version 1) or coded (version 2).
    pub payload_bytes: usize,
}

/// The header of a version 1 or 2 file (the checksum is not checked: in version 2 it covers the
/// decoded tokens).
pub fn header(bytes: &[u8]) -> Result<Header> {
    check_magic(bytes)?;
    if bytes[4] == VERSION {
        let f = read(bytes)?;
        let payload_bytes = (f.tokens.codes.len() * bits_per_index(f.n_codes) as usize).div_ceil(8);
        return Ok(Header {
            version: VERSION,
            model_id: f.model_id,
            model_hash: f.model_hash,
            shape: f.tokens.shape,
            fps: f.fps,
            prior_hash: None,
            payload_bytes,
        });
    }
    Ok(coded_header(bytes)?.0)
}

fn check_magic(bytes: &[u8]) -> Result<()> {
    if bytes.len() < 4 || bytes[..4] != MAGIC {
        bail!(Input, "not a .vgt token file (bad magic)");
    }
    if bytes.len() < 5 {
        bail!(Input, "truncated .vgt file ({} bytes)", bytes.len());
    }
    if bytes[4] != VERSION && bytes[4] != VERSION_CODED {
        bail!(Input, ".vgt version {} is not supported (this build reads versions {VERSION} and {VERSION_CODED})", bytes[4]);
    }
    Ok(())
}

/// A version 2 header and where its coded words start.
fn coded_header(bytes: &[u8]) -> Result<(Header, usize)> {
    if bytes.len() < HEADER_CODED + 4 {
        bail!(Input, "truncated .vgt file ({} bytes)", bytes.len());
    }
    let (flags, id_len) = (bytes[5], bytes[6] as usize);
    if flags & !(FLAG_FPS | FLAG_CODED) != 0 || flags & FLAG_CODED == 0 {
        bail!(Input, "corrupt .vgt file (flags {flags:#04x})");
    }
    let shape = read_grid(bytes, 7)?;
    let model_hash: [u8; 16] = bytes[15..31].try_into().expect("16 bytes");
    let prior_hash: [u8; 16] = bytes[31..47].try_into().expect("16 bytes");
    let fps_len = if flags & FLAG_FPS != 0 { 4 } else { 0 };
    let words_at = HEADER_CODED + id_len + fps_len;
    if bytes.len() < words_at + 4 || !(bytes.len() - words_at - 4).is_multiple_of(4) {
        bail!(Input, "corrupt .vgt file: {} bytes do not hold a coded stream after a {words_at}-byte header", bytes.len());
    }
    let (model_id, fps) = read_id_and_fps(bytes, HEADER_CODED, id_len, fps_len > 0)?;
    if (bytes.len() - words_at - 4) < 4 {
        bail!(Input, "truncated .vgt file ({} bytes)", bytes.len());
    }
    let payload_bytes = bytes.len() - words_at - 8;
    Ok((Header { version: VERSION_CODED, model_id, model_hash, shape, fps, prior_hash: Some(prior_hash), payload_bytes }, words_at))
}

/// A token file coded under `prior` (version 2). `progress(done, total)` after every token.
pub fn write_coded(f: &TokenFile, prior: &CodingPrior, progress: impl FnMut(usize, usize)) -> Result<Vec<u8>> {
    let id = writable_id_and_grid(f)?;
    if f.n_codes != prior.gpt.config.n_codes {
        bail!(Input, "these tokens index {} codes; the prior was trained over {}", f.n_codes, prior.gpt.config.n_codes);
    }
    let words = crate::entropy::encode(prior.gpt, &f.tokens, progress)?;
    let mut out = Vec::with_capacity(HEADER_CODED + id.len() + 8 + 4 * words.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[VERSION_CODED, FLAG_CODED | if f.fps.is_some() { FLAG_FPS } else { 0 }, id.len() as u8]);
    push_grid(&mut out, f.tokens.shape);
    out.extend_from_slice(&f.model_hash);
    out.extend_from_slice(&prior.hash);
    push_id_and_fps(&mut out, id, f.fps);
    words.iter().for_each(|w| out.extend_from_slice(&w.to_le_bytes()));
    out.extend_from_slice(&tokens_checksum(&f.tokens.codes).to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    Ok(out)
}

fn tokens_checksum(codes: &[u32]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    codes.iter().for_each(|c| h.update(&c.to_le_bytes()));
    h.finalize()
}

/// Read a version 1 file, or a version 2 file with the prior it names (`prior`; without it, or
/// with another, an error that names the prior's hash). `progress(done, total)` after every
/// decoded token of a version 2 file.
pub fn read_with(bytes: &[u8], prior: Option<&CodingPrior>, progress: impl FnMut(usize, usize)) -> Result<TokenFile> {
    check_magic(bytes)?;
    if bytes[4] == VERSION {
        return read(bytes);
    }
    let (h, words_at) = coded_header(bytes)?;
    // checked before any decoding: a damaged header must not set the decoder to work
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        bail!(Input, "corrupt .vgt file (checksum mismatch; truncated or damaged)");
    }
    let wanted = h.prior_hash.expect("version 2 names its prior");
    let prior = match prior {
        Some(p) if p.hash == wanted => p,
        Some(p) => bail!(Input, "these tokens are coded under prior {}, not this one ({}): decoding needs that prior", hex(&wanted), hex(&p.hash)),
        None => bail!(Input, "these tokens are coded under prior {} (a compressed .vgt file): decoding needs that prior", hex(&wanted)),
    };
    let latent = [h.shape[1], h.shape[2], h.shape[3]];
    crate::entropy::check_prior(prior.gpt, latent)?;
    let (coded, tokens_crc) = body[words_at..].split_at(body.len() - words_at - 4);
    let words: Vec<u32> = coded.chunks_exact(4).map(|w| u32::from_le_bytes(w.try_into().expect("4 bytes"))).collect();
    let tokens = crate::entropy::decode(prior.gpt, words, h.shape[0], progress)?;
    if tokens_checksum(&tokens.codes).to_le_bytes() != tokens_crc {
        bail!(
            Input,
            "the tokens decoded under this prior are not the ones coded (their checksum differs): the file was damaged before its checksum was made, or this machine computed other probabilities than the one that wrote it"
        );
    }
    Ok(TokenFile { model_id: h.model_id, model_hash: h.model_hash, n_codes: prior.gpt.config.n_codes, tokens, fps: h.fps })
}

/// Read a version 1 file (a version 2 file needs its prior: [`read_with`]).
pub fn read(bytes: &[u8]) -> Result<TokenFile> {
    check_magic(bytes)?;
    if bytes[4] == VERSION_CODED {
        return read_with(bytes, None, |_, _| {});
    }
    if bytes.len() < HEADER + 4 {
        bail!(Input, "truncated .vgt file ({} bytes)", bytes.len());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if crc32fast::hash(body).to_le_bytes() != crc {
        bail!(Input, "corrupt .vgt file (checksum mismatch; truncated or damaged)");
    }
    let (flags, bits, id_len) = (bytes[5], bytes[6] as u32, bytes[7] as usize);
    if flags & !FLAG_FPS != 0 {
        bail!(Input, "corrupt .vgt file (unknown flags {flags:#04x})");
    }
    let n_codes = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize;
    if !(2..=1 << 16).contains(&n_codes) || bits != bits_per_index(n_codes) {
        bail!(Input, "corrupt .vgt file ({n_codes} codes at {bits} bits per index)");
    }
    let shape = read_grid(bytes, 12)?;
    let n: usize = shape.iter().product();
    let model_hash: [u8; 16] = bytes[20..36].try_into().expect("16 bytes");
    let mut at = HEADER;
    let fps_len = if flags & 1 != 0 { 4 } else { 0 };
    let packed = (n * bits as usize).div_ceil(8);
    if body.len() != at + id_len + fps_len + packed {
        bail!(Input, "corrupt .vgt file: {} bytes, expected {} for {shape:?} tokens", bytes.len(), at + id_len + fps_len + packed + 4);
    }
    let (model_id, fps) = read_id_and_fps(body, at, id_len, fps_len > 0)?;
    at += id_len + fps_len;
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
