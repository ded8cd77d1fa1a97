//! The `.vgt` token file: round trips, and every corrupt, truncated or foreign input is an error
//! (never a panic), checked on generated inputs with proptest.

use proptest::prelude::*;
use videogpt::tokens::Tokens;
use videogpt::vgt::{self, TokenFile};

fn token_file() -> impl Strategy<Value = TokenFile> {
    (1usize..=16, 1usize..3, 1usize..5, 1usize..9, 1usize..9, any::<bool>(), "[a-z0-9-]{0,20}", any::<[u8; 16]>())
        .prop_flat_map(|(bits, b, t, h, w, fps, id, hash)| {
            // the largest and (for even widths) the smallest codebook needing `bits` bits
            let n_codes = if bits % 2 == 1 { 1usize << bits } else { (1usize << (bits - 1)) + 1 };
            let n = b * t * h * w;
            (proptest::collection::vec(0..n_codes as u32, n), Just((n_codes, [b, t, h, w], fps, id, hash)))
        })
        .prop_map(|(codes, (n_codes, shape, fps, id, hash))| TokenFile {
            model_id: id,
            model_hash: hash,
            n_codes,
            tokens: Tokens { shape, codes },
            fps: fps.then_some(15.0),
        })
}

proptest! {
    #[test]
    fn round_trips(f in token_file()) {
        let bytes = vgt::write(&f).unwrap();
        let bits = vgt::bits_per_index(f.n_codes) as usize;
        prop_assert_eq!(bytes.len(), 36 + f.model_id.len() + if f.fps.is_some() { 4 } else { 0 } + (f.tokens.codes.len() * bits).div_ceil(8) + 4);
        prop_assert_eq!(vgt::read(&bytes).unwrap(), f);
    }

    #[test]
    fn damage_is_an_error(f in token_file(), at in any::<prop::sample::Index>(), flip in 1u8..=255, cut in any::<prop::sample::Index>()) {
        let bytes = vgt::write(&f).unwrap();
        let mut damaged = bytes.clone();
        damaged[at.index(bytes.len())] ^= flip;
        prop_assert!(vgt::read(&damaged).is_err());
        prop_assert!(vgt::read(&bytes[..cut.index(bytes.len())]).is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..200), magic in any::<bool>()) {
        if magic && bytes.len() >= 5 {
            bytes[..4].copy_from_slice(&vgt::MAGIC);
            bytes[4] = vgt::VERSION;
        }
        let _ = vgt::read(&bytes);
    }
}

#[test]
fn a_16_frame_clip_is_a_small_file() {
    // VideoGPT's 4×16×16 grid of a 16×64×64 clip with 1024 codes: 10 bits a token
    let f = TokenFile {
        model_id: "natural-64".into(),
        model_hash: [7; 16],
        n_codes: 1024,
        tokens: Tokens { shape: [1, 4, 16, 16], codes: (0..1024).map(|i| (i * 37 % 1024) as u32).collect() },
        fps: Some(30.0),
    };
    let bytes = vgt::write(&f).unwrap();
    assert_eq!(bytes.len(), 36 + 10 + 4 + 1280 + 4);
    assert_eq!(vgt::read(&bytes).unwrap(), f);
    assert!(vgt::read(b"VGT\x1a\x02").unwrap_err().to_string().contains("truncated"));
    let mut v3 = bytes.clone();
    v3[4] = 3;
    assert!(vgt::read(&v3).unwrap_err().to_string().contains("version 3 is not supported"));
    // version 2 (tokens coded under a prior, tests/vgt_coded.rs) needs its coded-tokens flag
    let mut v2 = bytes.clone();
    v2[4] = 2;
    assert!(vgt::read(&v2).unwrap_err().to_string().contains("flags 0x01"));
    assert!(vgt::read(b"RIFF....WAVE").unwrap_err().to_string().contains("not a .vgt token file"));
    assert!(f.check_model(b"another model", 1024).unwrap_err().to_string().contains("were made with model natural-64"));
}

/// `bytes` with its trailing CRC-32 recomputed: damage that a share link's author (anyone) can
/// make look intact. Everything after the checksum check must still refuse it.
fn recrc(mut bytes: Vec<u8>) -> Vec<u8> {
    let n = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..n]);
    bytes[n..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

fn sample() -> TokenFile {
    TokenFile {
        model_id: "natural-64".into(),
        model_hash: [7; 16],
        n_codes: 1000, // 10 bits: indices 1000..1023 fit the bits but not the codebook
        tokens: Tokens { shape: [1, 2, 3, 4], codes: (0..24).map(|i| (i * 37 % 1000) as u32).collect() },
        fps: Some(30.0),
    }
}

/// Each rejection docs/vgt-format.md lists after magic, version and truncation, on a file whose
/// CRC has been fixed up, with its own error.
#[test]
fn every_documented_rejection_holds_with_a_valid_crc() {
    let good = vgt::write(&sample()).unwrap();
    assert_eq!(vgt::read(&recrc(good.clone())).unwrap(), sample());
    let err = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        f(&mut b);
        vgt::read(&recrc(b)).unwrap_err().to_string()
    };
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let cases: Vec<(&str, Damage, &str)> = vec![
        ("unknown flag bits", Box::new(|b| b[5] |= 0x80), "unknown flags 0x81"),
        ("bits that do not match n_codes", Box::new(|b| b[6] = 11), "1000 codes at 11 bits"),
        ("one code", Box::new(|b| b[8..12].copy_from_slice(&1u32.to_le_bytes())), "1 codes at 10 bits"),
        ("over 65536 codes", Box::new(|b| b[8..12].copy_from_slice(&70_000u32.to_le_bytes())), "70000 codes"),
        ("an empty grid", Box::new(|b| b[14..16].copy_from_slice(&0u16.to_le_bytes())), "token grid [1, 0, 3, 4]"),
        ("a grid past the token limit", Box::new(|b| b[12..20].copy_from_slice(&[255, 255, 255, 255, 255, 255, 255, 255])), "token grid [65535"),
        ("a grid that does not match the data", Box::new(|b| b[18..20].copy_from_slice(&5u16.to_le_bytes())), "expected"),
        ("a model id that is not UTF-8", Box::new(|b| b[36] = 0xff), "model id is not UTF-8"),
        ("a frame rate that is not positive", Box::new(|b| b[46..50].copy_from_slice(&(-1.0f32).to_le_bytes())), "frame rate -1"),
        ("a NaN frame rate", Box::new(|b| b[46..50].copy_from_slice(&f32::NAN.to_le_bytes())), "frame rate NaN"),
        (
            "an index past the codebook",
            Box::new(|b| {
                b[50] = 0xff;
                b[51] |= 0x03;
            }),
            "an index is past the codebook",
        ),
        ("a longer model id than the file holds", Box::new(|b| b[7] = 200), "expected"),
    ];
    for (what, damage, want) in cases {
        let e = err(&damage);
        assert!(e.contains(want), "{what}: {e}");
    }
}

/// The padding bits after the last index are zero: a file with any of them set is refused, so no
/// two files decode to the same tokens (the round trip holds for every byte, not only the header).
#[test]
fn nonzero_padding_bits_are_refused() {
    // 3 indices of 10 bits: 30 bits in 4 bytes, the last byte's 2 high bits are padding
    let f = TokenFile { tokens: Tokens { shape: [1, 1, 1, 3], codes: vec![999, 0, 512] }, ..sample() };
    let good = vgt::write(&f).unwrap();
    let last = good.len() - 5;
    assert_eq!(good[last] >> 6, 0, "the writer zeroes the padding");
    assert_eq!(vgt::read(&good).unwrap(), f);
    for bit in [6, 7] {
        let mut b = good.clone();
        b[last] |= 1 << bit;
        let e = vgt::read(&recrc(b)).unwrap_err().to_string();
        assert!(e.contains("nonzero padding bits"), "padding bit {bit}: {e}");
    }
}

proptest! {
    /// Every byte of a file matters: with the CRC fixed up, any change to any byte (header, id,
    /// frame rate, indices, padding) is refused or reads as a file that writes back to exactly
    /// the changed bytes.
    #[test]
    fn mutated_bytes_are_refused_or_round_trip(f in token_file(), at in any::<prop::sample::Index>(), value in any::<u8>()) {
        let mut bytes = vgt::write(&f).unwrap();
        let at = 5 + at.index(bytes.len() - 9);
        bytes[at] = value;
        let bytes = recrc(bytes);
        if let Ok(read) = vgt::read(&bytes) {
            prop_assert_eq!(vgt::write(&read).unwrap(), bytes);
        }
    }

    /// Any change to the header, with the CRC fixed up, is either refused or gives a file that
    /// writes back to the same bytes: nothing in between.
    #[test]
    fn mutated_headers_are_refused_or_round_trip(f in token_file(), at in 5usize..36, value in any::<u8>()) {
        let mut bytes = vgt::write(&f).unwrap();
        bytes[at] = value;
        let bytes = recrc(bytes);
        if let Ok(read) = vgt::read(&bytes) {
            prop_assert_eq!(vgt::write(&read).unwrap(), bytes);
        }
    }
}
