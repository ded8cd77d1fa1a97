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
    let mut v2 = bytes.clone();
    v2[4] = 2;
    assert!(vgt::read(&v2).unwrap_err().to_string().contains("version 2 is not supported"));
    assert!(vgt::read(b"RIFF....WAVE").unwrap_err().to_string().contains("not a .vgt token file"));
    assert!(f.check_model(b"another model", 1024).unwrap_err().to_string().contains("were made with model natural-64"));
}
