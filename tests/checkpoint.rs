//! Original VideoGPT checkpoints (`videogpt convert`, `--model x.ckpt`): Lightning-style `.ckpt`
//! files written by `torch.save` in both of torch's formats (train/make_checkpoint_fixtures.py)
//! convert to exactly the weights `save_vqvae`/`save_gpt` wrote, run like them, and hostile
//! pickles are refused without anything being run.

mod common;

use std::collections::BTreeMap;

use common::{fixture, read, s, tmp, videogpt, Golden};
use safetensors::SafeTensors;
use videogpt::checkpoint::{self, Kind};

/// name → (dtype, shape, bytes)
type Tensors = BTreeMap<String, (String, Vec<usize>, Vec<u8>)>;

/// A safetensors file's tensors and metadata.
fn tensors(bytes: &[u8]) -> (Tensors, BTreeMap<String, String>) {
    let st = SafeTensors::deserialize(bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(bytes).unwrap();
    let t = st.tensors().into_iter().map(|(k, v)| (k, (format!("{:?}", v.dtype()), v.shape().to_vec(), v.data().to_vec()))).collect();
    (t, meta.metadata().clone().unwrap_or_default().into_iter().collect())
}

#[test]
fn lightning_checkpoints_convert_to_the_weights_pytorch_saved() {
    for (model, kind) in [("vqvae", Kind::VqVae), ("prior", Kind::Prior)] {
        let (want, want_meta) = tensors(&read(&format!("ckpt_{model}.safetensors")));
        for (file, format) in [(format!("ckpt_{model}.ckpt"), "zip"), (format!("ckpt_{model}.legacy.ckpt"), "legacy")] {
            let c = checkpoint::convert(&read(&file), false).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert_eq!((c.kind, c.format), (kind, format), "{file}");
            let (got, got_meta) = tensors(&c.safetensors);
            assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>(), "{file}: tensor names");
            for (k, w) in &want {
                assert!(got[k] == *w, "{file}: tensor {k} differs from save_{model}'s (dtype, shape or bytes)");
            }
            assert_eq!(got_meta, want_meta, "{file}: hparams");
            // what a Lightning file carries besides the weights is named, not converted
            for k in ["optimizer_states", "callbacks", "lr_schedulers"] {
                assert!(c.ignored.iter().any(|i| i == k), "{file}: {k} not among the ignored {:?}", c.ignored);
            }
            eprintln!("{file}: {} tensors equal to PyTorch's, {} hparams", got.len(), got_meta.len());
        }
    }
    // --f16 halves the floats and keeps the counters
    let c = checkpoint::convert(&read("ckpt_vqvae.ckpt"), true).unwrap();
    let (got, _) = tensors(&c.safetensors);
    assert_eq!(got["codebook.embeddings"].0, "F16");
    assert_eq!(got["encoder.res_stack.0.block.0.num_batches_tracked"].0, "I64");
}

#[test]
fn frame_conditioned_checkpoint_with_strided_shared_storages_matches_pytorch() {
    // its ResNet's tensors are views (stride 0, offsets, overlapping rows) of two shared storages
    let g = Golden::open("ckpt_frame_golden.safetensors");
    let (cshape, codes) = g.i32("codes");
    let (fshape, frames) = g.f32("frames"); // B×3×1×H×W
    let (_, want) = g.f32("logits");
    let (_, bits) = g.f32("bits_per_token");
    let n = cshape[1..].iter().product::<usize>();
    let fsize = fshape[1..].iter().product::<usize>();
    for file in ["ckpt_frame.ckpt", "ckpt_frame.legacy.ckpt"] {
        let c = checkpoint::convert(&read(file), false).unwrap();
        let gpt = videogpt::gpt::Gpt::load(&c.safetensors, None).unwrap();
        assert_eq!(gpt.config.n_cond_frames, 1);
        let per_clip = want.len() / cshape[0];
        assert_eq!(per_clip, n * gpt.config.n_codes);
        for b in 0..cshape[0] {
            let clip: Vec<u32> = codes[b * n..(b + 1) * n].iter().map(|&c| c as u32).collect();
            let frame = videogpt::Volume { dims: videogpt::Dims::new(3, 1, fshape[3], fshape[4]), data: frames[b * fsize..(b + 1) * fsize].to_vec() };
            let features = gpt.frame_features(&frame).unwrap();
            let logits = gpt.logits_with(&clip, None, Some(&features)).unwrap();
            let err = common::max_abs_diff(&logits, &want[b * per_clip..(b + 1) * per_clip]);
            // measured 1e-6 (f32 through a ResNet-34 and the GPT); 10× margin and more
            assert!(err <= 1e-4, "{file} clip {b}: logits max |err| {err:e}");
            let bpt = gpt.bits_per_token_with(&clip, None, Some(&features)).unwrap();
            assert!((bpt - bits[b] as f64).abs() < 1e-4, "{file} clip {b}: {bpt} bits/token, PyTorch {}", bits[b]);
            eprintln!("{file} clip {b}: logits max |err| {err:e}, {bpt:.5} bits/token");
        }
    }
}

#[test]
fn every_model_option_takes_a_checkpoint_and_gets_the_same_tokens_and_bits() {
    let clip = fixture("mmnist_test0.npy");
    let (a, b) = (tmp("from-ckpt.npy"), tmp("from-safetensors.npy"));
    for (model, out) in [("ckpt_vqvae.legacy.ckpt", &a), ("ckpt_vqvae.safetensors", &b)] {
        let (ok, _, err) = videogpt(&["encode", "--model", s(&fixture(model)), "--input", s(&clip), "--output", s(out)]);
        assert!(ok, "{model}: {err}");
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap(), "tokens from the .ckpt differ");
    let score = |model: &str| {
        let (ok, out, err) = videogpt(&["score", "--model", s(&fixture(model)), "--tokens", s(&a)]);
        assert!(ok, "{model}: {err}");
        out
    };
    let (from_ckpt, from_st) = (score("ckpt_prior.ckpt"), score("ckpt_prior.safetensors"));
    assert!(from_ckpt.contains("bits"), "{from_ckpt}");
    assert_eq!(from_ckpt, from_st);
    // convert writes a file the engine loads, and says what it found
    let out = tmp("converted.safetensors");
    let (ok, stdout, err) = videogpt(&["convert", "--input", s(&fixture("ckpt_prior.ckpt")), "--output", s(&out)]);
    assert!(ok, "{err}");
    assert!(stdout.contains("GPT prior") && stdout.contains("sparse") && stdout.contains("parameters"), "{stdout}");
    let (want, _) = tensors(&read("ckpt_prior.safetensors"));
    assert_eq!(tensors(&std::fs::read(&out).unwrap()).0, want);
    // and will not write over its input
    let ckpt = tmp("prior.ckpt");
    std::fs::copy(fixture("ckpt_prior.ckpt"), &ckpt).unwrap();
    let (ok, _, err) = videogpt(&["convert", "--input", s(&ckpt), "--output", s(&ckpt)]);
    assert!(!ok && err.contains("refusing to write over it"), "{err}");
    assert_eq!(std::fs::read(&ckpt).unwrap(), read("ckpt_prior.ckpt"));
}

/// A legacy-format checkpoint around the pickle `body` (which must end with STOP).
fn legacy(body: &[u8]) -> Vec<u8> {
    let mut b = vec![0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.'];
    b.extend_from_slice(&[0x80, 0x02, b'M', 0xe9, 0x03, b'.']); // 1001
    b.extend_from_slice(&[0x80, 0x02, b'}', b'.']); // sys_info
    b.extend_from_slice(body);
    b.extend_from_slice(&[0x80, 0x02, b']', b'.']); // no storages
    b
}

#[test]
fn hostile_pickles_are_refused_and_nothing_runs() {
    let marker = std::path::Path::new("/tmp/videogpt-pwned");
    let _ = std::fs::remove_file(marker);
    for (file, global) in [("ckpt_evil_system.ckpt", "posix.system"), ("ckpt_evil_eval.legacy.ckpt", "builtins.eval")] {
        let err = checkpoint::convert(&read(file), false).err().unwrap_or_else(|| panic!("{file} converted")).to_string();
        let global_py2 = global.replace("builtins.", "__builtin__.");
        assert!(err.contains(global) || err.contains(&global_py2), "{file}: {err}");
        assert!(err.contains("refused"), "{file}: {err}");
        // the CLI: one line, exit 1, no output file
        let out = tmp(&format!("{file}.safetensors"));
        let (ok, _, stderr) = videogpt(&["convert", "--input", s(&fixture(file)), "--output", s(&out)]);
        assert!(!ok && stderr.trim().lines().count() == 1 && stderr.contains("refused"), "{stderr}");
        assert!(!out.exists());
        let (ok, _, stderr) = videogpt(&["info", s(&fixture(file))]);
        assert!(!ok && stderr.contains("refused"), "{stderr}");
    }
    assert!(!marker.exists());

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // a REDUCE on a global named by STACK_GLOBAL (protocol 4)
        ("stack global", [&b"\x80\x04\x8c\x02os\x8c\x06system\x93\x8c\x02id\x85R."[..]].concat(), "os.system"),
        // deep nesting: more lists than the stack may hold
        ("deep nesting", [vec![0x80, 0x02], vec![b']'; 200_000], vec![b'.']].concat(), "max_stack"),
        ("huge memo index", b"\x80\x02j\xff\xff\xff\xff.".to_vec(), "memo entry 4294967295"),
        ("memo flood", [vec![0x80, 0x04, b'N'], vec![0x94; 1_100_000], vec![b'.']].concat(), "max_memo"),
        ("marks", [vec![0x80, 0x02], vec![b'('; 20_000], vec![b'.']].concat(), "max_marks"),
        ("no stop", b"\x80\x02]".to_vec(), "corrupt file"),
        ("bad opcode", b"\x80\x02\xff.".to_vec(), "unknown pickle opcode"),
        ("extension", b"\x80\x02\x82\x01.".to_vec(), "extension registry"),
        ("string length past the end", b"\x80\x02X\xff\xff\xff\x7fabc.".to_vec(), "ends in the middle"),
    ];
    for (name, body, want) in cases {
        let err = checkpoint::convert(&legacy(&body), false).err().unwrap_or_else(|| panic!("{name}: converted")).to_string();
        assert!(err.contains(want), "{name}: {err}");
        eprintln!("{name}: {err}");
    }

    // a tensor of 1,000 floats over a storage of 2: refused when its bytes are gathered
    let pickle = b"\x80\x02}X\x01\x00\x00\x00wctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00M\xe8\x03\x85K\x01\x85\x89NtRs.";
    let mut bytes = legacy(pickle);
    bytes.truncate(bytes.len() - 4);
    bytes.extend_from_slice(b"\x80\x02]X\x01\x00\x00\x000a.");
    bytes.extend_from_slice(&2u64.to_le_bytes());
    bytes.extend_from_slice(&[0; 8]);
    let ck = checkpoint::torch::Checkpoint::read(&bytes).unwrap();
    let w = ck.heap.lookup(&ck.root, "w").unwrap();
    let t = checkpoint::torch::as_tensor(&ck.heap, w).unwrap();
    assert_eq!(t.size, [1000]);
    let err = ck.tensor(t).unwrap_err().to_string();
    assert!(err.contains("reads past the end of storage 0"), "{err}");
    // the same tensor over 1,000 floats of storage is read
    let mut t = t.clone();
    t.size = vec![2];
    assert_eq!(ck.tensor(&t).unwrap().len(), 8);
}

#[test]
fn damaged_checkpoints_are_errors_never_panics() {
    // every truncation and a sweep of single-byte changes of both formats: an error or a model,
    // never a panic or an allocation the file does not justify
    for file in ["ckpt_prior.ckpt", "ckpt_vqvae.legacy.ckpt"] {
        let bytes = read(file);
        let mut outcomes = [0usize; 2];
        for cut in (0..bytes.len()).step_by(997) {
            outcomes[checkpoint::convert(&bytes[..cut], false).is_ok() as usize] += 1;
        }
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..400 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let mut b = bytes.clone();
            let at = (rng % b.len() as u64) as usize;
            b[at] = (rng >> 32) as u8;
            outcomes[checkpoint::convert(&b, false).is_ok() as usize] += 1;
        }
        assert!(outcomes[0] > 0, "{file}: no damage was noticed");
        eprintln!("{file}: {} errors, {} still-loadable variants", outcomes[0], outcomes[1]);
    }
}
