//! Shared by the parity tests: golden fixtures made by `train/make_fixtures.py` with the PyTorch
//! reference, and the checks every backend must pass against them.
#![allow(dead_code)]

use std::path::PathBuf;

use safetensors::{Dtype, SafeTensors};
use videogpt::backend::{Backend, Dims, Volume};
use videogpt::VqVae;

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures").join(name)
}

/// This checkout, or `VIDEOGPT_ROOT`: a copy of `tests/fixtures/` and `models/` beside copied test
/// executables (`scripts/gpu-check.sh --pack` makes one for a GPU machine without cargo).
pub fn root() -> PathBuf {
    std::env::var_os("VIDEOGPT_ROOT").map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// A file `name` in this test process's own temporary folder.
pub fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("videogpt-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Run the `videogpt` binary: (succeeded, stdout, stderr). A user error exits with 1; any other
/// exit (a panic is 101) fails the test.
pub fn videogpt(args: &[&str]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_videogpt")).args(args).output().unwrap();
    let code = out.status.code();
    assert!(code == Some(0) || code == Some(1), "videogpt {args:?} exited with {code:?} (a panic?)");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// A path as a command-line argument.
pub fn s(p: &std::path::Path) -> &str {
    p.to_str().unwrap()
}

/// A safetensors file with the tensors of `base` and its metadata edited.
pub fn with_metadata(base: &[u8], edit: impl FnOnce(&mut std::collections::HashMap<String, String>)) -> Vec<u8> {
    let st = SafeTensors::deserialize(base).unwrap();
    let (_, meta) = SafeTensors::read_metadata(base).unwrap();
    let mut meta = meta.metadata().clone().unwrap_or_default();
    edit(&mut meta);
    let tensors: Vec<_> = st.tensors().into_iter().map(|(k, t)| (k, t.dtype(), t.shape().to_vec(), t.data().to_vec())).collect();
    videogpt::weights::to_safetensors(&tensors, meta)
}

/// The same safetensors file with every f16 tensor widened to f32 (exactly: the same values).
pub fn widen_to_f32(bytes: &[u8]) -> Vec<u8> {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
    let tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(k, t)| match t.dtype() {
            Dtype::F16 => {
                let wide = t.data().chunks_exact(2).flat_map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32().to_le_bytes()).collect();
                (k, Dtype::F32, t.shape().to_vec(), wide)
            }
            d => (k, d, t.shape().to_vec(), t.data().to_vec()),
        })
        .collect();
    videogpt::weights::to_safetensors(&tensors, meta.metadata().clone().unwrap_or_default())
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub struct Golden {
    bytes: Vec<u8>,
}

impl Golden {
    pub fn open(name: &str) -> Self {
        Golden { bytes: read(name) }
    }
    fn view(&self, key: &str) -> (Vec<usize>, Dtype, Vec<u8>) {
        let st = SafeTensors::deserialize(&self.bytes).unwrap();
        let t = st.tensor(key).unwrap_or_else(|_| panic!("golden tensor {key}"));
        (t.shape().to_vec(), t.dtype(), t.data().to_vec())
    }
    pub fn metadata(&self) -> std::collections::HashMap<String, String> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes).unwrap();
        meta.metadata().clone().unwrap_or_default()
    }
    pub fn has(&self, key: &str) -> bool {
        SafeTensors::deserialize(&self.bytes).unwrap().names().contains(&key)
    }
    pub fn f32(&self, key: &str) -> (Vec<usize>, Vec<f32>) {
        let (s, d, b) = self.view(key);
        assert_eq!(d, Dtype::F32);
        (s, b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
    }
    pub fn i32(&self, key: &str) -> (Vec<usize>, Vec<i32>) {
        let (s, d, b) = self.view(key);
        assert_eq!(d, Dtype::I32);
        (s, b.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect())
    }
    pub fn f64(&self, key: &str) -> (Vec<usize>, Vec<f64>) {
        let (s, d, b) = self.view(key);
        assert_eq!(d, Dtype::F64);
        (s, b.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())
    }

    pub fn u8(&self, key: &str) -> (Vec<usize>, Vec<u8>) {
        let (s, d, b) = self.view(key);
        assert_eq!(d, Dtype::U8);
        (s, b)
    }
    /// A `1×C×T×H×W` golden as a volume.
    pub fn volume(&self, key: &str) -> Volume {
        let (s, data) = self.f32(key);
        assert_eq!(s.len(), 5);
        Volume { dims: Dims::new(s[1], s[2], s[3], s[4]), data }
    }
}

pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Encode indices identical; decode within 3e-6 in float (measured ≤ 3.2e-7 over every fixture on
/// both backends: 10×); uint8 output within ±1 (a value on a rounding boundary).
pub fn check_against_golden<B: Backend>(b: &B, model_file: &str, golden_file: &str, prefix: &str) {
    let model = VqVae::load(b, &read(model_file), "").unwrap();
    let g = Golden::open(golden_file);
    let x = g.volume(&format!("{prefix}input"));
    let (ishape, want_idx) = g.i32(&format!("{prefix}indices"));
    let latent = [ishape[1], ishape[2], ishape[3]];

    let codes = pollster::block_on(model.encode_volume(b, &x)).unwrap();
    let want: Vec<u32> = want_idx.iter().map(|&v| v as u32).collect();
    let mismatches = codes.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(mismatches, 0, "{model_file} {prefix}: {mismatches} of {} codes differ from the reference", want.len());

    let y = pollster::block_on(model.decode_codes(b, &codes, latent)).unwrap();
    let want_y = g.volume(&format!("{prefix}decoded"));
    assert_eq!(y.dims, want_y.dims);
    let err = max_abs_diff(&y.data, &want_y.data);
    assert!(err <= 3e-6, "{model_file} {prefix}: decode max |err| = {err:e} > 3e-6");

    let video = videogpt::video::to_video(&y).unwrap();
    let (_, want_u8) = g.u8(&format!("{prefix}decoded_u8"));
    let worst = video.rgb.iter().zip(&want_u8).map(|(a, b)| (*a as i16 - *b as i16).abs()).max().unwrap();
    assert!(worst <= 1, "{model_file} {prefix}: uint8 output off by {worst}");
    eprintln!("{model_file} {prefix}: codes identical, decode max |err| {err:e}, uint8 max diff {worst}");
}

/// The frame-conditioned prior of `gpt_frame_golden`: its weights come from the seeded generator
/// (VideoGPT's ResNet-34 is 33.9 M parameters at any model size, too big to commit), checked
/// against the digest of the weights the goldens were made from.
pub fn frame_conditioned() -> (videogpt::gpt::Gpt, Golden, Vec<u8>) {
    use sha2::Digest;
    let g = Golden::open("gpt_frame_golden.safetensors");
    let meta = g.metadata();
    let vq_bytes = read(&format!("{}.safetensors", meta["vqvae"]));
    let vq = videogpt::VqVae::load(&videogpt::Cpu, &vq_bytes, "").unwrap().config;
    let config = videogpt::gpt::GptConfig::from_metadata(&meta, &vq).unwrap();
    assert_eq!(config.n_cond_frames, 1);
    let bytes = videogpt::gpt::random_weights(&config, &vq, meta["seed"].parse().unwrap());
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    let mut h = sha2::Sha256::new();
    for name in names {
        h.update(name.as_bytes());
        h.update(st.tensor(name).unwrap().data());
    }
    let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(digest, meta["weights_sha256"], "random_weights changed: rerun train/make_gpt_fixtures.py --only-frame");
    (videogpt::gpt::Gpt::load(&bytes, Some(&vq_bytes)).unwrap(), g, bytes)
}

/// The conditioning frame of each golden clip: the first frame of carphone and of its mirror.
pub fn cond_frames() -> Vec<videogpt::Volume> {
    let (shape, x) = Golden::open("vqvae_444_golden.safetensors").f32("input"); // 1×3×T×H×W
    let (t, hw) = (shape[2], shape[3] * shape[4]);
    let frame = |mirror: bool| {
        let mut data = Vec::with_capacity(3 * hw);
        for c in 0..3 {
            let plane = &x[(c * t) * hw..(c * t + 1) * hw];
            for row in plane.chunks_exact(shape[4]) {
                if mirror {
                    data.extend(row.iter().rev());
                } else {
                    data.extend_from_slice(row);
                }
            }
        }
        videogpt::Volume { dims: videogpt::Dims::new(3, 1, shape[3], shape[4]), data }
    };
    vec![frame(false), frame(true)]
}
