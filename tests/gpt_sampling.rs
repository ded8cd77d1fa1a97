//! Sampling from the GPT prior: the draw follows the softmax, seeds reproduce, greedy decoding
//! agrees with the teacher-forced logits, prefixes are kept; and the CLI's sample and score.

mod common;
use common::*;
use videogpt::gpt::{draw, Gpt, SampleOptions};
use videogpt::rng::SplitMix64;

fn gpt() -> Gpt {
    Gpt::load(&read("gpt_sparse.safetensors"), Some(&read("vqvae_422.safetensors"))).unwrap()
}

#[test]
fn draws_follow_the_softmax_with_temperature_and_top_k() {
    let logits = [1.0f32, 2.0, 0.5, 2.0, -1.0];
    let n = 200_000;
    for (temperature, top_k) in [(1.0f32, None), (0.5, None), (2.0, Some(3))] {
        let opts = SampleOptions { temperature, top_k, ..Default::default() };
        let mut rng = SplitMix64::new(42);
        let mut counts = [0usize; 5];
        for _ in 0..n {
            counts[draw(&logits, &opts, &mut rng) as usize] += 1;
        }
        // expected: softmax(logits / T) over the kept tokens (top 3 = indices 1, 3, 0)
        let kept: Vec<usize> = match top_k {
            Some(_) => vec![0, 1, 3],
            None => (0..5).collect(),
        };
        let z: f64 = kept.iter().map(|&i| (logits[i] as f64 / temperature as f64).exp()).sum();
        for i in 0..5 {
            let p = if kept.contains(&i) { (logits[i] as f64 / temperature as f64).exp() / z } else { 0.0 };
            let freq = counts[i] as f64 / n as f64;
            assert!((freq - p).abs() < 0.005, "T={temperature} top_k={top_k:?} token {i}: frequency {freq:.4}, probability {p:.4}");
        }
    }
}

#[test]
fn a_seed_reproduces_a_sample_and_another_seed_does_not() {
    let gpt = gpt();
    let opts = SampleOptions { seed: 9, ..Default::default() };
    let a = gpt.sample(&opts, &[], |_, _| {}).unwrap();
    let b = gpt.sample(&opts, &[], |_, _| {}).unwrap();
    let c = gpt.sample(&SampleOptions { seed: 10, ..opts.clone() }, &[], |_, _| {}).unwrap();
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.len(), 512);
}

#[test]
fn greedy_sampling_follows_the_teacher_forced_argmax() {
    let gpt = gpt();
    let k = gpt.config.n_codes;
    let grid = gpt.sample(&SampleOptions { top_k: Some(1), ..Default::default() }, &[], |_, _| {}).unwrap();
    let logits = gpt.logits(&grid, None).unwrap();
    for (i, row) in logits.chunks_exact(k).enumerate() {
        let best = row.iter().enumerate().fold((0, f32::NEG_INFINITY), |b, (j, &v)| if v > b.1 { (j, v) } else { b }).0;
        assert_eq!(grid[i] as usize, best, "position {i}");
    }
}

#[test]
fn prefix_continuation_keeps_the_prefix_and_reports_progress() {
    let gpt = gpt();
    let (_, codes) = Golden::open("gpt_sparse_golden.safetensors").i32("codes");
    let prefix: Vec<u32> = codes[..256].iter().map(|&c| c as u32).collect(); // the first latent frame
    let mut calls = Vec::new();
    let grid = gpt.sample(&SampleOptions::default(), &prefix, |i, g| calls.push((i, g.len()))).unwrap();
    assert_eq!(grid[..256], prefix[..]);
    assert_eq!(calls.len(), 256);
    assert_eq!(calls[0], (256, 257));
    assert_eq!(*calls.last().unwrap(), (511, 512));
    let refused = |opts: SampleOptions, prefix: &[u32]| gpt.sample(&opts, prefix, |_, _| {}).unwrap_err().to_string();
    let e = refused(SampleOptions { temperature: 0.0, ..Default::default() }, &[]);
    assert!(e.contains("temperature must be positive, got 0"), "{e}");
    let e = refused(SampleOptions { top_k: Some(0), ..Default::default() }, &[]);
    assert!(e.contains("top-k must be at least 1"), "{e}");
    let e = refused(SampleOptions::default(), &[0; 600]);
    assert!(e.contains("a prefix of 600 tokens is longer than the grid (512)"), "{e}");
}

#[test]
fn cli_sample_then_score() {
    let (tokens, video) = (tmp("sample-t.npy"), tmp("sample-v.npy"));
    let f = |n: &str| fixture(n).to_str().unwrap().to_string();
    let (ok, _, err) = videogpt(&[
        "sample",
        "--model",
        &f("gpt_full.safetensors"),
        "--vqvae",
        &f("vqvae_444.safetensors"),
        "--output",
        video.to_str().unwrap(),
        "--tokens",
        tokens.to_str().unwrap(),
        "--n",
        "2",
        "--seed",
        "5",
        "--prefix",
        &f("carphone_8f.npy"),
        "--prefix-frames",
        "1",
    ]);
    assert!(ok, "{err}");
    let v = videogpt::video::io::read_video(&video).unwrap();
    assert_eq!((v.frames, v.height, v.width), (16, 32, 32));
    let (ok, out, err) =
        videogpt(&["score", "--model", &f("gpt_full.safetensors"), "--vqvae", &f("vqvae_444.safetensors"), "--tokens", tokens.to_str().unwrap()]);
    assert!(ok, "{err}");
    // the same numbers as the library
    let npy = npyz::NpyFile::new(std::fs::File::open(&tokens).unwrap()).unwrap();
    let codes: Vec<u32> = npy.into_vec::<i32>().unwrap().into_iter().map(|c| c as u32).collect();
    let gpt = Gpt::load(&read("gpt_full.safetensors"), Some(&read("vqvae_444.safetensors"))).unwrap();
    for (i, clip) in codes.chunks(128).enumerate() {
        // both clips keep the carphone prefix: the first latent frame (64 tokens) is shared
        assert_eq!(clip[..64], codes[..64]);
        let want = format!("clip {i}: {:.6} bits per token", gpt.bits_per_token(clip, None).unwrap());
        assert!(out.contains(&want), "{out} lacks {want}");
    }
    // the GPU sampling path through the CLI, continuing the same prefix
    let gpu_video = tmp("sample-g.npy");
    let (ok, _, err) = videogpt(&[
        "sample",
        "--model",
        &f("gpt_full.safetensors"),
        "--vqvae",
        &f("vqvae_444.safetensors"),
        "--output",
        gpu_video.to_str().unwrap(),
        "--seed",
        "5",
        "--prefix",
        &f("carphone_8f.npy"),
        "--prefix-frames",
        "1",
        "--device",
        "gpu",
    ]);
    assert!(ok, "{err}");
    let g = videogpt::video::io::read_video(&gpu_video).unwrap();
    assert_eq!((g.frames, g.height, g.width), (8, 32, 32));
    // errors, not panics
    let (ok, _, err) = videogpt(&["sample", "--model", &f("gpt_full.safetensors"), "--output", video.to_str().unwrap()]);
    assert!(!ok && err.contains("pass the VQ-VAE file separately"), "{err}");
    let (ok, _, err) =
        videogpt(&["score", "--model", &f("gpt_sparse.safetensors"), "--vqvae", &f("vqvae_422.safetensors"), "--tokens", tokens.to_str().unwrap()]);
    assert!(!ok && err.contains("this GPT models [2, 16, 16]"), "{err}");
    let (ok, _, err) = videogpt(&[
        "sample",
        "--model",
        &f("gpt_full.safetensors"),
        "--vqvae",
        &f("vqvae_444.safetensors"),
        "--output",
        video.to_str().unwrap(),
        "--prefix",
        &f("carphone_8f.npy"),
        "--prefix-frames",
        "2",
    ]);
    assert!(!ok && err.contains("--prefix-frames must be between 1 and 1"), "{err}");
    for f in [&tokens, &video, &gpu_video] {
        std::fs::remove_file(f).ok();
    }
}

/// The same file with every f16 tensor stored as f32 (exactly the same values).
fn to_f32(bytes: &[u8]) -> Vec<u8> {
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let file = safetensors::SafeTensors::deserialize(bytes).unwrap();
    let tensors: Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)> = file
        .tensors()
        .into_iter()
        .map(|(k, v)| {
            assert_eq!(v.dtype(), safetensors::Dtype::F16, "{k}");
            let wide = v.data().chunks_exact(2).flat_map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32().to_le_bytes()).collect();
            (k, safetensors::Dtype::F32, v.shape().to_vec(), wide)
        })
        .collect();
    videogpt::weights::to_safetensors(&tensors, meta.metadata().clone().unwrap_or_default())
}

#[test]
fn f16_weights_step_to_the_same_logits_as_their_f32_values() {
    // A decoding step reads f16 weights as f16 (half the bytes); widened, they are the same
    // numbers as the f32 copy, summed in the same order, so every logit must be equal.
    let f16_file = videogpt::weights::to_f16(&read("gpt_sparse.safetensors")).unwrap();
    let vq = read("vqvae_422.safetensors");
    let (a, b) = (Gpt::load(&f16_file, Some(&vq)).unwrap(), Gpt::load(&to_f32(&f16_file), Some(&vq)).unwrap());
    let (mut cache_a, mut cache_b) = (a.new_cache(None).unwrap(), b.new_cache(None).unwrap());
    let mut previous = None;
    for i in 0..a.config.positions() {
        let (la, lb) = (a.step(&mut cache_a, previous).unwrap(), b.step(&mut cache_b, previous).unwrap());
        assert_eq!(la, lb, "position {i}");
        previous = Some(la.iter().enumerate().fold((0, f32::NEG_INFINITY), |m, (j, &v)| if v > m.1 { (j as u32, v) } else { m }).0);
    }
}

#[test]
fn a_prefix_can_start_anywhere_in_a_film_and_only_that_window_is_kept() {
    // `sample --prefix FILM --start N` continues frames N..N+16 of the bundled film: its first
    // latent frame is the tokens `encode` gives those frames cut out of the whole decoded film,
    // not the film's opening; a start past the end is a clear error.
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let film = root.join("www/media/calais-1906.mp4");
    let (prior, vqvae) = (root.join("models/tiny-untrained-prior.safetensors"), root.join("models/tiny-untrained.safetensors"));
    let first_frame_tokens = |tokens: &std::path::Path| -> Vec<i32> {
        let npy = npyz::NpyFile::new(std::fs::File::open(tokens).unwrap()).unwrap();
        npy.into_vec::<i32>().unwrap()[..256].to_vec()
    };
    let sampled = |start: &str| {
        let (video, tokens) = (tmp(&format!("start{start}.npy")), tmp(&format!("start{start}-tokens.npy")));
        let (ok, _, err) = videogpt(&["sample", "--model", s(&prior), "--prefix", s(&film), "--start", start, "--output", s(&video), "--tokens", s(&tokens)]);
        assert!(ok, "{err}");
        first_frame_tokens(&tokens)
    };
    let whole = videogpt::video::io::read_video(&film).unwrap();
    let window = tmp("film-window-40.npy");
    videogpt::video::io::write_video(&window, &whole.slice(40, 16)).unwrap();
    let encoded = tmp("film-window-40-tokens.npy");
    let (ok, _, err) = videogpt(&["encode", "--model", s(&vqvae), "--input", s(&window), "--output", s(&encoded)]);
    assert!(ok, "{err}");
    let at40 = sampled("40");
    assert_eq!(at40, first_frame_tokens(&encoded), "the kept tokens are not those of frames 40..56");
    assert_ne!(at40, sampled("0"), "frame 40's window kept the film's opening");

    let (ok, _, err) = videogpt(&["sample", "--model", s(&prior), "--prefix", s(&film), "--start", "500", "--output", s(&tmp("start500.npy"))]);
    assert!(!ok && err.contains("starts at frame 500, but the clip has 78 frames"), "{err}");
}
