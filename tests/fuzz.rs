//! Structure-aware fuzzing on stable Rust, with a fixed budget: every reader of untrusted bytes
//! gets generated and mutated inputs and must return a value or an error, never panic, abort or
//! allocate what the input does not justify. Inputs are built from the formats' own structure
//! (headers with random fields, valid files with mutated fields) so that the fuzzing gets past
//! the first check; a crash found here becomes a case in tests/bad_inputs.rs.
//!
//! `VIDEOGPT_FUZZ_ITERS` sets the executions per target (default 2,000 in CI; docs/reliability.md
//! reports a run with 50,000). Each target prints its count and how many inputs it accepted.

mod common;

use std::io::Cursor;

use common::{read, with_metadata};
use videogpt::checkpoint;
use videogpt::tokens::Tokens;
use videogpt::video::io::{read_npy, read_y4m};
use videogpt::workflow::Tokenizer;

/// xorshift64*: a small deterministic generator (each target has its own seed).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    /// A number from the edges and the middle of the ranges that matter to sizes.
    fn size(&mut self) -> u64 {
        *self.pick(&[
            0,
            1,
            2,
            3,
            4,
            8,
            15,
            16,
            17,
            63,
            64,
            65,
            127,
            128,
            255,
            256,
            1023,
            1024,
            4096,
            65_535,
            65_536,
            1 << 20,
            1 << 31,
            1 << 32,
            u32::MAX as u64,
            1 << 40,
            u64::MAX,
        ])
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// This run's seed: `VIDEOGPT_FUZZ_SEED` when set (to replay a failure), else new each run, so
/// that CI explores new inputs every time; printed either way. Each target mixes in its own tag.
fn seed(target: u64) -> Rng {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let base = *BASE.get_or_init(|| match std::env::var("VIDEOGPT_FUZZ_SEED") {
        Ok(v) => v.parse().expect("VIDEOGPT_FUZZ_SEED is a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_007,
    });
    eprintln!("fuzz seed {base} (VIDEOGPT_FUZZ_SEED={base} replays this run)");
    // xorshift must not start at 0
    Rng((base.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ target) | 1)
}

fn iters() -> usize {
    std::env::var("VIDEOGPT_FUZZ_ITERS").ok().and_then(|v| v.parse().ok()).unwrap_or(2_000)
}

/// Byte-level damage: flips, inserted and deleted runs, a truncation, a splice of random bytes.
fn mutate(rng: &mut Rng, mut b: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(rng.next() as u8);
        }
        match rng.below(5) {
            0 => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(b.len());
                b[i] = *rng.pick(&[0, 0x7f, 0x80, 0xff, b'0', b'9', b'\n', b' ']);
            }
            2 => {
                let i = rng.below(b.len() + 1);
                let len = 1 + rng.below(16);
                let run = rng.bytes(len);
                b.splice(i..i, run);
            }
            3 => {
                let i = rng.below(b.len());
                let j = (i + 1 + rng.below(16)).min(b.len());
                b.drain(i..j);
            }
            _ => b.truncate(rng.below(b.len() + 1)),
        }
    }
    b
}

/// Print the target's count, and check that at least `min_share` of its inputs were accepted
/// (each floor is about half the share measured over three runs with new seeds, default budget):
/// a generator whose inputs all fail the first check (a changed header, a stricter reader) would
/// otherwise fuzz nothing past it and still pass.
fn report(target: &str, n: usize, accepted: usize, min_share: f64) {
    eprintln!("fuzz {target}: {n} executions, {accepted} inputs accepted, 0 crashes");
    let share = accepted as f64 / n.max(1) as f64;
    assert!(
        share >= min_share,
        "fuzz {target}: only {accepted} of {n} inputs accepted ({:.1} %, expected at least {:.1} %): the generator no longer reaches past the first checks",
        100.0 * share,
        100.0 * min_share
    );
}

#[test]
fn fuzz_npy_video_and_tokens() {
    let mut rng = seed(0x6e70_7901);
    let (n, mut accepted) = (iters(), 0);
    let valid = read("carphone_8f.npy");
    for i in 0..n {
        let bytes = if i % 2 == 0 {
            // a header with random fields over a random amount of data
            let descr = rng.pick(&["|u1", "<u1", "<i4", "<f4", ">i4", "|b1", "<u2", "<i8", "|S1", "u1", "<i4 "]).to_string();
            // mostly the ranks and sizes readers accept (video T×H×W×3, tokens T'×H'×W'), with
            // data to match, so that the checks after the header are reached
            let plausible = rng.below(4) > 0;
            let rank = if plausible { 3 + rng.below(2) } else { rng.below(7) };
            let dims: Vec<u64> = (0..rank)
                .map(|d| {
                    if plausible {
                        if d == rank - 1 && rng.below(2) == 0 {
                            3
                        } else {
                            1 + rng.below(9) as u64
                        }
                    } else {
                        rng.size()
                    }
                })
                .collect();
            let esize = match &descr[1..] {
                "i4" | "f4" | "i4 " => 4,
                "u2" => 2,
                "i8" => 8,
                _ => 1,
            };
            let want = dims.iter().try_fold(esize as u64, |a, &d| a.checked_mul(d)).filter(|&n| n < 1 << 16);
            let dims: Vec<String> = dims.iter().map(u64::to_string).collect();
            let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
            let fortran = if rng.below(4) == 0 { "True" } else { "False" };
            let mut header = format!("{{'descr': '{descr}', 'fortran_order': {fortran}, 'shape': {shape}, }}");
            if rng.below(8) == 0 {
                header = String::from_utf8_lossy(&mutate(&mut rng, header.into_bytes())).into_owned();
            }
            let mut b = b"\x93NUMPY\x01\x00".to_vec();
            b.extend_from_slice(&(header.len() as u16 + 1).to_le_bytes());
            b.extend_from_slice(header.as_bytes());
            b.push(b'\n');
            let data = match want {
                Some(n) if rng.below(3) > 0 => n as usize,
                _ => rng.below(4096),
            };
            b.extend(rng.bytes(data));
            b
        } else {
            mutate(&mut rng, valid[..valid.len().min(4096)].to_vec())
        };
        if let Ok(v) = read_npy(Cursor::new(&bytes)) {
            assert_eq!(v.rgb.len(), v.frames * v.height * v.width * 3);
            accepted += 1;
        }
        if let Ok(t) = videogpt::tokens::npy::read(Cursor::new(&bytes)) {
            assert_eq!(t.codes.len(), t.shape.iter().product::<usize>());
            accepted += 1;
        }
    }
    report("npy (video and tokens)", 2 * n, accepted, 0.006);
}

#[test]
fn fuzz_y4m() {
    let mut rng = seed(0x7934_6d01);
    let (n, mut accepted) = (iters(), 0);
    for i in 0..n {
        let (w, h) = (rng.size() % 70_000, rng.size() % 70_000);
        let mut header = format!("YUV4MPEG2 W{w} H{h}");
        for _ in 0..rng.below(5) {
            header.push(' ');
            const TAGS: [&str; 15] =
                ["F30:1", "F0:0", "F25:", "Ip", "A1:1", "C420jpeg", "C444", "C420mpeg2", "Cmono", "XYSCSS=420JPEG", "C422", "F1:0", "©", "W", "H-1"];
            let tag = TAGS[rng.below(TAGS.len())];
            header.push_str(tag);
        }
        let mut b = header.into_bytes();
        b.push(b'\n');
        let frame = (w * h * 3 / 2) as usize;
        for _ in 0..rng.below(3) {
            b.extend_from_slice(if rng.below(6) == 0 { b"FRAME Ixyz\n" } else { b"FRAME\n" });
            let len = if frame < 1 << 16 && rng.below(3) > 0 { frame } else { rng.below(1 << 12) };
            b.extend(rng.bytes(len));
        }
        if i % 3 == 0 {
            b = mutate(&mut rng, b);
        }
        if let Ok(v) = read_y4m(Cursor::new(&b)) {
            assert_eq!(v.rgb.len(), v.frames * v.height * v.width * 3);
            accepted += 1;
        }
    }
    report("y4m", n, accepted, 0.005);
}

#[test]
fn fuzz_model_loading_with_mutated_hparams_shapes_and_bytes() {
    let mut rng = seed(0x6d6f_6401);
    let (n, mut accepted) = (iters() / 4, 0);
    let vq = read("ckpt_vqvae.safetensors");
    let prior = read("ckpt_prior.safetensors");
    let keys = ["embedding_dim", "n_codes", "n_hiddens", "n_res_layers", "downsample", "resolution", "sequence_length"];
    let gkeys = ["hidden_dim", "heads", "layers", "attn_type", "class_cond_dim", "n_cond_frames", "vqvae.n_codes", "vqvae.resolution", "vqvae.downsample"];
    for i in 0..n {
        let (base, is_prior) = if i % 2 == 0 { (&vq, false) } else { (&prior, true) };
        let bytes = match rng.below(3) {
            // hparams with values from the edges
            0 => with_metadata(base, |m| {
                for _ in 0..1 + rng.below(3) {
                    let k = if is_prior && rng.below(2) == 0 { *rng.pick(&gkeys) } else { *rng.pick(&keys) };
                    let v = match rng.below(4) {
                        0 => rng.size().to_string(),
                        1 => format!("{},{},{}", rng.size(), rng.size(), rng.size()),
                        2 => rng.pick(&["-1", "", "full", "sparse", "4,4", "1e3", "0x10", "NaN", "4,4,4,4"]).to_string(),
                        _ => (rng.size() as i64 - 1).to_string(),
                    };
                    m.insert(k.to_string(), v);
                }
                if rng.below(8) == 0 {
                    m.remove(*rng.pick(&keys));
                }
            }),
            // shapes and offsets edited in the JSON header
            1 => {
                let len = u64::from_le_bytes(base[..8].try_into().unwrap()) as usize;
                let mut header = String::from_utf8(base[8..8 + len].to_vec()).unwrap();
                let digits: Vec<usize> = header.match_indices(|c: char| c.is_ascii_digit()).map(|(j, _)| j).collect();
                for _ in 0..1 + rng.below(3) {
                    let at = *rng.pick(&digits);
                    header.replace_range(at..at + 1, &rng.size().to_string()[..1]);
                }
                let mut b = (header.len() as u64).to_le_bytes().to_vec();
                b.extend_from_slice(header.as_bytes());
                b.extend_from_slice(&base[8 + len..]);
                b
            }
            _ => mutate(&mut rng, base.clone()),
        };
        let ok_vq = Tokenizer::load(&videogpt::Cpu, &bytes, if is_prior { "vqvae." } else { "" }).is_ok();
        let ok_gpt = is_prior && videogpt::gpt::Gpt::load(&bytes, None).is_ok();
        accepted += ok_vq as usize + ok_gpt as usize;
    }
    report("model loading (safetensors)", n, accepted, 0.12);
}

#[test]
fn fuzz_token_grids_against_a_model() {
    let mut rng = seed(0x746f_6b01);
    let (n, mut accepted) = (iters(), 0);
    let t = Tokenizer::load(&videogpt::Cpu, &read("ckpt_vqvae.safetensors"), "").unwrap();
    let n_codes = t.config().n_codes;
    for i in 0..n {
        let grid = [rng.size() as usize % (1 << 20), rng.size() as usize % (1 << 20), rng.size() as usize % (1 << 20)];
        let grid = if i % 2 == 0 { [1 + rng.below(5), 1 + rng.below(6), 1 + rng.below(6)] } else { grid };
        if t.check_grid(grid).is_err() {
            continue;
        }
        let len = grid.iter().product::<usize>();
        let codes: Vec<u32> = (0..len).map(|_| if rng.below(50) == 0 { n_codes as u32 + rng.below(5) as u32 } else { rng.below(n_codes) as u32 }).collect();
        let tokens = Tokens { shape: [1, grid[0], grid[1], grid[2]], codes };
        if videogpt::tokens::check_codes(&tokens, n_codes).is_err() {
            continue;
        }
        let y = pollster::block_on(t.vqvae.decode_codes(&videogpt::Cpu, &tokens.codes, grid)).unwrap();
        assert_eq!(y.dims.c, 3);
        accepted += 1;
    }
    report("token grids (check_grid, check_codes, decode)", n, accepted, 0.12);
}

/// `.vgt` version 2 (tokens coded under a prior): valid files of random tokens coded under the
/// untrained tiny prior, then damaged, half of them with the checksum recomputed so that the
/// damage reaches the header's reader and the range decoder. Each input is read, or refused with
/// an error, and a file the decoder accepts gives a grid of the header's shape.
#[test]
fn fuzz_coded_token_files() {
    use videogpt::vgt::{self, CodingPrior, TokenFile};
    let mut rng = seed(0x7667_7402);
    // every decode that gets past the checksum runs the prior over the whole grid: fewer executions
    let (n, mut accepted) = (iters().div_ceil(10), 0);
    let bytes = std::fs::read(common::root().join("models/tiny-untrained-prior.safetensors")).unwrap();
    let gpt = videogpt::gpt::Gpt::load(&bytes, None).unwrap();
    let prior = CodingPrior::new(&gpt, &bytes);
    let valid: Vec<Vec<u8>> = (0..4)
        .map(|i| {
            let clips = 1 + i % 2;
            let codes = (0..clips * 1024).map(|_| rng.below(if i < 2 { 256 } else { 8 }) as u32).collect();
            let f = TokenFile {
                model_id: "tiny".into(),
                model_hash: [i as u8; 16],
                n_codes: 256,
                tokens: Tokens { shape: [clips, 4, 16, 16], codes },
                fps: (i % 2 == 0).then_some(30.0),
            };
            vgt::write_coded(&f, &prior, |_, _| {}).unwrap()
        })
        .collect();
    for _ in 0..n {
        let base = rng.pick(&valid).clone();
        let mut b = mutate(&mut rng, base);
        if rng.below(2) == 0 && b.len() > 4 {
            let at = b.len() - 4;
            let crc = crc32fast::hash(&b[..at]);
            b[at..].copy_from_slice(&crc.to_le_bytes());
        }
        // what counts here is reaching the range decoder: a header that reads and a checksum that holds
        let intact = b.len() > 4 && crc32fast::hash(&b[..b.len() - 4]).to_le_bytes() == b[b.len() - 4..];
        accepted += (intact && vgt::header(&b).is_ok()) as usize;
        if let Ok(f) = vgt::read_with(&b, Some(&prior), |_, _| {}) {
            assert_eq!(f.tokens.codes.len(), f.tokens.shape.iter().product::<usize>());
        }
    }
    report(".vgt version 2 (coded under a prior; counted: inputs that reached the decoder)", n, accepted, 0.08);
}

#[test]
fn fuzz_checkpoint_pickles() {
    let mut rng = seed(0x636b_7001);
    let (n, mut accepted) = (iters() / 4, 0);
    let files = [read("ckpt_prior.ckpt"), read("ckpt_vqvae.legacy.ckpt"), read("ckpt_evil_eval.legacy.ckpt")];
    for i in 0..n {
        let bytes = mutate(&mut rng, files[i % files.len()].clone());
        accepted += checkpoint::convert(&bytes, false).is_ok() as usize;
    }
    report("checkpoints (.ckpt pickles)", n, accepted, 0.035);
}
