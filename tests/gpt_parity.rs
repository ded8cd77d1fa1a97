//! The GPT prior (CPU) against the PyTorch reference's goldens (train/make_gpt_fixtures.py).

mod common;
use common::*;
use safetensors::tensor::{serialize, TensorView};
use safetensors::SafeTensors;
use videogpt::gpt::Gpt;

/// (model file, its VQ-VAE file, golden file)
const MODELS: [(&str, &str, &str); 3] = [
    ("gpt_full.safetensors", "vqvae_444.safetensors", "gpt_full_golden.safetensors"),
    ("gpt_sparse.safetensors", "vqvae_422.safetensors", "gpt_sparse_golden.safetensors"),
    ("gpt_class.safetensors", "vqvae_444.safetensors", "gpt_class_golden.safetensors"),
];

fn load(model: &str, vqvae: &str) -> Gpt {
    Gpt::load(&read(model), Some(&read(vqvae))).unwrap()
}

/// Each clip of the golden batch: (codes, class).
fn clips(g: &Golden) -> Vec<(Vec<u32>, Option<usize>)> {
    let (shape, codes) = g.i32("codes");
    let n: usize = shape[1..].iter().product();
    let labels = g.has("labels").then(|| g.i32("labels").1);
    (0..shape[0])
        .map(|b| {
            let c = codes[b * n..(b + 1) * n].iter().map(|&v| v as u32).collect();
            (c, labels.as_ref().map(|l| l[b] as usize))
        })
        .collect()
}

#[test]
fn teacher_forced_logits_match_reference() {
    for (model, vqvae, golden) in MODELS {
        let gpt = load(model, vqvae);
        let g = Golden::open(golden);
        let (_, want) = g.f32("logits");
        let (_, bits) = g.f32("bits_per_token");
        let per_clip = want.len() / clips(&g).len();
        for (b, (codes, class)) in clips(&g).into_iter().enumerate() {
            let logits = gpt.logits(&codes, class).unwrap();
            let err = max_abs_diff(&logits, &want[b * per_clip..(b + 1) * per_clip]);
            // measured ≤ 1.5e-5 (gpt_class; 4e-6 to 8.6e-6 for the others): 7× margin
            assert!(err <= 1e-4, "{model} clip {b}: logits max |err| {err:e}");
            let bpt = gpt.bits_per_token(&codes, class).unwrap();
            assert!((bpt - bits[b] as f64).abs() < 1e-4, "{model} clip {b}: {bpt} bits/token, reference {}", bits[b]);
            eprintln!("{model} clip {b}: logits max |err| {err:e}, {bpt:.5} bits/token");
        }
    }
}

#[test]
fn kv_cache_decoding_equals_the_parallel_forward() {
    for (model, vqvae, golden) in MODELS {
        let gpt = load(model, vqvae);
        let g = Golden::open(golden);
        let (codes, class) = clips(&g).remove(0);
        let parallel = gpt.logits(&codes, class).unwrap();
        let k = gpt.config.n_codes;
        let mut cache = gpt.new_cache(class).unwrap();
        let mut worst = 0.0f32;
        for i in 0..codes.len() {
            let row = gpt.step(&mut cache, (i > 0).then(|| codes[i - 1])).unwrap();
            worst = worst.max(max_abs_diff(&row, &parallel[i * k..(i + 1) * k]));
        }
        assert!(worst <= 1e-4, "{model}: decode step vs parallel forward max |err| {worst:e}");
        let e = gpt.step(&mut cache, Some(codes[codes.len() - 1])).unwrap_err().to_string();
        assert!(e.contains("the grid is full"), "a full grid takes no more steps: {e}");
    }
}

#[test]
fn sparse_attention_is_not_full_causal() {
    // the same weights read as a full-attention model give different logits: the mask matters
    let bytes = read("gpt_sparse.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    meta.insert("attn_type".into(), "full".into());
    let full = serialize(st.iter().collect::<Vec<(&str, TensorView)>>(), Some(meta)).unwrap();
    let (sparse, full) = (load("gpt_sparse.safetensors", "vqvae_422.safetensors"), Gpt::load(&full, Some(&read("vqvae_422.safetensors"))).unwrap());
    let (codes, _) = clips(&Golden::open("gpt_sparse_golden.safetensors")).remove(0);
    let (a, b) = (sparse.logits(&codes, None).unwrap(), full.logits(&codes, None).unwrap());
    let k = sparse.config.n_codes;
    // the first 5 blocks (160 tokens) see everything before them either way
    assert!(max_abs_diff(&a[..160 * k], &b[..160 * k]) < 1e-6);
    assert!(max_abs_diff(&a, &b) > 1e-2);
}

#[test]
fn vqvae_inside_the_gpt_file_loads_like_videogpt_checkpoints() {
    // VideoGPT's layout: the VQ-VAE's state_dict under `vqvae.`, its hparams in the metadata
    let (gpt_bytes, vq_bytes) = (read("gpt_full.safetensors"), read("vqvae_444.safetensors"));
    let (g, v) = (SafeTensors::deserialize(&gpt_bytes).unwrap(), SafeTensors::deserialize(&vq_bytes).unwrap());
    let mut meta = SafeTensors::read_metadata(&gpt_bytes).unwrap().1.metadata().clone().unwrap();
    for (k, val) in SafeTensors::read_metadata(&vq_bytes).unwrap().1.metadata().clone().unwrap() {
        meta.insert(format!("vqvae.{k}"), val);
    }
    let names: Vec<String> = v.names().iter().map(|k| format!("vqvae.{k}")).collect();
    let mut tensors: Vec<(String, TensorView)> = g.iter().map(|(k, t)| (k.to_string(), t)).collect();
    tensors.extend(v.iter().zip(&names).map(|((_, t), k)| (k.clone(), t)));
    let combined = serialize(tensors, Some(meta)).unwrap();
    let gpt = Gpt::load(&combined, None).unwrap();
    let (codes, _) = clips(&Golden::open("gpt_full_golden.safetensors")).remove(0);
    let want = load("gpt_full.safetensors", "vqvae_444.safetensors").logits(&codes, None).unwrap();
    assert_eq!(gpt.logits(&codes, None).unwrap(), want);
    // and the VQ-VAE itself loads from the same file under its prefix
    videogpt::VqVae::load(&videogpt::Cpu, &combined, "vqvae.").unwrap();
}

#[test]
fn bad_gpt_inputs_are_errors() {
    let gpt = load("gpt_full.safetensors", "vqvae_444.safetensors");
    assert!(gpt.logits(&[0; 10], None).unwrap_err().to_string().contains("models grids of [2, 8, 8]"));
    assert!(gpt.logits(&[64; 128], None).unwrap_err().to_string().contains("token 64 (position 0) is out of range"));
    assert!(gpt.logits(&[0; 128], Some(1)).unwrap_err().to_string().contains("unconditional"));
    let class = load("gpt_class.safetensors", "vqvae_444.safetensors");
    assert!(class.logits(&[0; 128], None).unwrap_err().to_string().contains("class-conditional"));
    assert!(class.logits(&[0; 128], Some(5)).unwrap_err().to_string().contains("class 5 is out of range"));
    // no VQ-VAE anywhere
    let err = Gpt::load(&read("gpt_full.safetensors"), None).err().unwrap().to_string();
    assert!(err.contains("pass the VQ-VAE file separately"), "{err}");
    // metadata that says frame-conditioned over tensors that are not: the missing key is named
    let bytes = read("gpt_full.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut meta = SafeTensors::read_metadata(&bytes).unwrap().1.metadata().clone().unwrap();
    meta.insert("n_cond_frames".into(), "1".into());
    let framed = serialize(st.iter().collect::<Vec<(&str, TensorView)>>(), Some(meta)).unwrap();
    let err = Gpt::load(&framed, Some(&read("vqvae_444.safetensors"))).err().unwrap().to_string();
    assert!(err.contains("attn_stack.attn_nets.0.pre_enc_norm.g"), "{err}");
    // a VQ-VAE with another codebook size
    let err = Gpt::load(&read("gpt_full.safetensors"), Some(&read("vqvae_422.safetensors"))).err().unwrap().to_string();
    assert!(err.contains("64 codes but the VQ-VAE has 48"), "{err}");
}

#[test]
fn frame_conditioned_prior_matches_reference() {
    let (gpt, g, _) = frame_conditioned();
    let (_, want_features) = g.f32("frame_features");
    let (_, want) = g.f32("logits");
    let (_, bits) = g.f32("bits_per_token");
    let clips = clips(&g);
    let (per_clip, m) = (want.len() / clips.len(), want_features.len() / clips.len());
    for (b, ((codes, _), frames)) in clips.into_iter().zip(cond_frames()).enumerate() {
        let features = gpt.frame_features(&frames).unwrap();
        let err = max_abs_diff(&features.0, &want_features[b * m..(b + 1) * m]);
        assert!(err <= 1e-4, "clip {b}: ResNet features max |err| {err:e}"); // measured ≤ 7.2e-6
        let logits = gpt.logits_with(&codes, None, Some(&features)).unwrap();
        let lerr = max_abs_diff(&logits, &want[b * per_clip..(b + 1) * per_clip]);
        assert!(lerr <= 2e-5, "clip {b}: logits max |err| {lerr:e}"); // measured ≤ 1.9e-6
        let bpt = gpt.bits_per_token_with(&codes, None, Some(&features)).unwrap();
        assert!((bpt - bits[b] as f64).abs() < 1e-4, "clip {b}: {bpt} bits/token, reference {}", bits[b]);
        // decoding one token at a time through the caches equals the parallel forward
        let mut cache = gpt.new_cache_with(None, Some(&features)).unwrap();
        let k = gpt.config.n_codes;
        for (i, row) in logits.chunks_exact(k).enumerate() {
            let step = gpt.step(&mut cache, i.checked_sub(1).map(|p| codes[p])).unwrap();
            let e = max_abs_diff(&step, row);
            assert!(e <= 1e-5, "clip {b} position {i}: decode step differs by {e:e}");
        }
        eprintln!("frame-conditioned clip {b}: features max |err| {err:e}, logits max |err| {lerr:e}, {bpt:.5} bits/token");
    }
    // the conditioning is required, and only for such a model
    assert!(gpt.logits(&vec![0; gpt.config.positions()], None).unwrap_err().to_string().contains("conditioned on 1 frame"));
    let plain = load("gpt_full.safetensors", "vqvae_444.safetensors");
    let f = gpt.frame_features(&cond_frames()[0]).unwrap();
    let e = plain.logits_with(&vec![0; 128], None, Some(&f)).unwrap_err().to_string();
    assert!(e.contains("this GPT is not frame-conditioned"), "{e}");
}
