//! The `videogpt` binary end to end: real frames in, tokens and video out, on both devices.

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn read_i32_npy(p: &Path) -> (Vec<u64>, Vec<i32>) {
    let npy = npyz::NpyFile::new(std::fs::File::open(p).unwrap()).unwrap();
    (npy.shape().to_vec(), npy.into_vec().unwrap())
}

#[test]
fn info_reports_hparams() {
    let (ok, out, _) = videogpt(&["info", s(&fixture("vqvae_422.safetensors"))]);
    assert!(ok);
    assert!(out.contains("downsample       4,2,2"), "{out}");
    assert!(out.contains("latent shape     2×16×16 = 512 tokens"), "{out}");
    assert!(out.contains("kind             VQ-VAE"), "{out}");
}

#[test]
fn info_reports_a_priors_hparams_and_its_vqvae() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (ok, out, err) = videogpt(&["info", s(&root.join("models/tiny-untrained-prior.safetensors"))]);
    assert!(ok, "{err}");
    assert!(out.contains("kind             GPT prior"), "{out}");
    assert!(out.contains("layers           2"), "{out}");
    assert!(out.contains("attn_type        sparse"), "{out}");
    // the GPT's own parameters, then the VQ-VAE stored under `vqvae.` in the same file
    assert!(out.contains("parameters       70800 (without its VQ-VAE)"), "{out}");
    assert!(out.contains("latent shape     4×16×16 = 1024 tokens"), "{out}");
    // a prior saved without its VQ-VAE says what is missing
    let (ok, _, err) = videogpt(&["info", s(&fixture("gpt_sparse.safetensors"))]);
    assert!(!ok && err.contains("holds no VQ-VAE"), "{err}");
}

#[test]
fn encode_decode_on_both_devices_match_the_reference() {
    let model = fixture("vqvae_444.safetensors");
    let clip = fixture("carphone_8f.npy"); // 8×144×176: preprocess resizes and crops it to 8×32×32
    let g = Golden::open("vqvae_444_golden.safetensors");
    let (_, want) = g.i32("indices");
    let mut per_device = Vec::new();
    for device in ["cpu", "gpu"] {
        let tokens = tmp(&format!("tokens-{device}.npy"));
        let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&clip), "--output", s(&tokens), "--device", device, "--resize", "videogpt"]);
        assert!(ok, "{err}");
        let (shape, codes) = read_i32_npy(&tokens);
        assert_eq!(shape, [2, 8, 8]);
        assert_eq!(codes, want, "{device} tokens differ from the reference");
        per_device.push(codes);

        let video = tmp(&format!("decoded-{device}.npy"));
        let (ok, _, err) = videogpt(&["decode", "--model", s(&model), "--input", s(&tokens), "--output", s(&video), "--device", device]);
        assert!(ok, "{err}");
        let decoded = videogpt::video::io::read_video(&video).unwrap();
        let (_, want_u8) = g.u8("decoded_u8");
        assert_eq!((decoded.frames, decoded.height, decoded.width), (8, 32, 32), "{device}");
        assert_eq!(decoded.rgb.len(), want_u8.len(), "{device}");
        let worst = decoded.rgb.iter().zip(&want_u8).map(|(a, b)| (*a as i16 - *b as i16).abs()).max().unwrap();
        assert!(worst <= 1, "{device}: decoded frames off by {worst}");
    }
    assert_eq!(per_device[0], per_device[1]);
}

#[test]
fn reconstruct_reports_metrics_as_json() {
    // a clip already at the model's 32×32, so the model-sized input is the file itself and the
    // report can be checked against PSNRs computed here from the two files
    let clip = videogpt::video::io::read_video(&fixture("carphone_8f.npy")).unwrap();
    let (h, w) = (32, 32);
    let mut rgb = Vec::with_capacity(clip.frames * h * w * 3);
    for f in 0..clip.frames {
        for y in 40..40 + h {
            let row = (f * clip.height + y) * clip.width * 3;
            rgb.extend_from_slice(&clip.rgb[row + 60 * 3..row + (60 + w) * 3]);
        }
    }
    let small = videogpt::video::Video { rgb, height: h, width: w, ..clip };
    let input = tmp("recon-in-32.npy");
    videogpt::video::io::write_video(&input, &small).unwrap();
    // .npy: the exact frames (a .y4m would pass them through 4:2:0 YUV)
    let out_video = tmp("recon-32.npy");
    let (ok, out, err) = videogpt(&["reconstruct", "--model", s(&fixture("vqvae_244.safetensors")), "--input", s(&input), "--output", s(&out_video), "--json"]);
    assert!(ok, "{err}");
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["frames"], 8);
    assert_eq!(report["tokens"], 4 * 8 * 8);
    let recon = videogpt::video::io::read_video(&out_video).unwrap();
    assert_eq!((recon.frames, recon.height, recon.width), (8, 32, 32));
    // the clip is at the model's size, so the model-sized input PSNR compares with is the clip's
    // own bytes (docs/metrics.md: rounded back from u/255 − 0.5, not truncated to u − 1)
    // PSNR by its definition (docs/metrics.md): pooled over the clip, and for each frame
    let db = |a: &[u8], b: &[u8]| {
        let se: f64 = a.iter().zip(b).map(|(&x, &y)| (x as f64 - y as f64).powi(2)).sum();
        10.0 * (255.0f64.powi(2) / (se / a.len() as f64)).log10()
    };
    let pooled = db(&small.rgb, &recon.rgb);
    let n = h * w * 3;
    let per_frame: Vec<f64> = (0..8).map(|f| db(&small.rgb[f * n..(f + 1) * n], &recon.rgb[f * n..(f + 1) * n])).collect();
    let reported: Vec<f64> = report["psnr_per_frame"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    assert!((report["psnr"].as_f64().unwrap() - pooled).abs() < 1e-9, "{} vs {pooled}", report["psnr"]);
    assert_eq!(reported.len(), 8);
    assert!(reported.iter().zip(&per_frame).all(|(a, b)| (a - b).abs() < 1e-9), "{reported:?} vs {per_frame:?}");
    let mean = per_frame.iter().sum::<f64>() / 8.0;
    assert!((report["psnr_frame_mean"].as_f64().unwrap() - mean).abs() < 1e-9, "{} vs {mean}", report["psnr_frame_mean"]);
}

#[test]
fn long_clips_become_a_batch_of_windows() {
    // 8 frames repeated to 20: two 8-frame windows, 4 frames left out
    let clip = videogpt::video::io::read_video(&fixture("carphone_8f.npy")).unwrap();
    let long = videogpt::video::Video::concat(&[clip.clone(), clip.clone(), clip.slice(0, 4)]).unwrap();
    let input = tmp("long.npy");
    videogpt::video::io::write_video(&input, &long).unwrap();
    let tokens = tmp("long-tokens.npy");
    let (ok, _, err) = videogpt(&["encode", "--model", s(&fixture("vqvae_444.safetensors")), "--input", s(&input), "--output", s(&tokens)]);
    assert!(ok, "{err}");
    assert!(err.contains("4 trailing frames"), "{err}");
    let (shape, codes) = read_i32_npy(&tokens);
    assert_eq!(shape, [2, 2, 8, 8]);
    assert_eq!(codes[..128], codes[128..], "the same frames give the same tokens");
    let video = tmp("long-decoded.npy");
    let (ok, _, err) = videogpt(&["decode", "--model", s(&fixture("vqvae_444.safetensors")), "--input", s(&tokens), "--output", s(&video)]);
    assert!(ok, "{err}");
    assert_eq!(videogpt::video::io::read_video(&video).unwrap().frames, 16);
}

#[test]
fn real_h264_clip_reconstructs_on_both_devices_with_identical_tokens() {
    // an H.264 mp4 of real frames, made with ffmpeg from the fixture
    let clip = videogpt::video::io::read_video(&fixture("carphone_8f.npy")).unwrap();
    let mp4 = tmp("carphone.mp4");
    videogpt::video::io::write_video(&mp4, &clip).unwrap();
    let mut tokens = Vec::new();
    for device in ["cpu", "gpu"] {
        let t = tmp(&format!("mp4-{device}.npy"));
        let (ok, _, err) = videogpt(&["encode", "--model", s(&fixture("vqvae_422.safetensors")), "--input", s(&mp4), "--output", s(&t), "--device", device]);
        assert!(ok, "{err}");
        tokens.push(read_i32_npy(&t).1);
        let (ok, out, err) = videogpt(&[
            "reconstruct",
            "--model",
            s(&fixture("vqvae_422.safetensors")),
            "--input",
            s(&mp4),
            "--output",
            s(&tmp(&format!("mp4-{device}.mp4"))),
            "--device",
            device,
            "--json",
        ]);
        assert!(ok, "{err}");
        assert!(serde_json::from_str::<serde_json::Value>(&out).unwrap()["psnr"].as_f64().unwrap() > 5.0);
    }
    assert_eq!(tokens[0], tokens[1], "CPU and GPU tokens differ");
    assert!(tokens[0].iter().collect::<std::collections::BTreeSet<_>>().len() > 10, "codes are not diverse");
}

#[test]
fn user_errors_are_reported_not_panicked() {
    let model = fixture("vqvae_444.safetensors");
    let clip = fixture("carphone_8f.npy");
    let (ok, _, err) = videogpt(&["info", "/nonexistent/model.safetensors"]);
    assert!(!ok && err.contains("cannot read model"), "{err}");
    let (ok, _, err) = videogpt(&["info", s(&clip)]);
    assert!(!ok && err.contains("safetensors"), "{err}");
    assert_eq!(err.matches("invalid model weights").count(), 1, "{err}");
    let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&clip), "--output", s(&tmp("x.txt"))]);
    assert!(!ok && err.contains("tokens are written as .npy"), "{err}");
    let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", "/nonexistent.mp4", "--output", s(&tmp("y.npy"))]);
    assert!(!ok && err.contains("cannot open"), "{err}");
    // tokens of a 64-code model decoded with a 32-code one
    let tokens = tmp("t64.npy");
    assert!(videogpt(&["encode", "--model", s(&model), "--input", s(&clip), "--output", s(&tokens)]).0);
    let (ok, _, err) = videogpt(&["decode", "--model", s(&fixture("vqvae_244.safetensors")), "--input", s(&tokens), "--output", s(&tmp("z.npy"))]);
    assert!(!ok && err.contains("out of range for a codebook of 32 codes"), "{err}");
    // a clip too short for the temporal downsample
    let short = tmp("short.npy");
    let one = videogpt::video::io::read_video(&clip).unwrap().slice(0, 3);
    videogpt::video::io::write_video(&short, &one).unwrap();
    let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&short), "--output", s(&tmp("w.npy"))]);
    assert!(!ok && err.contains("needs at least 4"), "{err}");
    // not a video at all, through the ffmpeg path
    let junk = tmp("junk.mp4");
    std::fs::write(&junk, b"definitely not an mp4").unwrap();
    let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&junk), "--output", s(&tmp("v.npy"))]);
    assert!(!ok && err.contains("junk.mp4"), "{err}");
}

#[test]
fn an_unknown_or_unsupported_cpu_kernel_is_an_error_not_a_fallback() {
    let model = fixture("vqvae_444.safetensors");
    for (value, want) in
        [("nonsense", "VIDEOGPT_CPU_KERNEL=nonsense names no kernel"), ("simd128", "VIDEOGPT_CPU_KERNEL=simd128: this processor cannot run that kernel")]
    {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_videogpt")).env("VIDEOGPT_CPU_KERNEL", value).args(["info", s(&model)]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{value}: {err}");
        assert!(err.starts_with("error: ") && err.contains(want) && err.contains("this processor runs: ") && err.contains("portable"), "{value}: {err}");
    }
}

/// `videogpt serve --port 0` on the repository; the child (kill it when done) and its address.
fn serve() -> (std::process::Child, String) {
    serve_with(&[])
}

fn serve_with(flags: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_videogpt"))
        .args(["serve", "--port", "0", "--root", s(&root)])
        .args(flags)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).unwrap().trim_end().trim_end_matches(" (Ctrl-C to stop)").trim_end_matches('/').to_string();
    (child, addr)
}

/// One GET on a fresh connection; the whole response as text (a read that waits over 20 s fails).
fn get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}

#[test]
fn serve_sends_the_page_with_isolation_headers() {
    let (mut plain, plain_addr) = serve_with(&[]);
    let plain_index = get(&plain_addr, "/").unwrap();
    plain.kill().ok();
    plain.wait().ok();
    assert!(plain_index.starts_with("HTTP/1.1 200"), "{plain_index}");
    assert!(!plain_index.contains("Cross-Origin-") && !plain_index.contains("Access-Control-"), "{plain_index}");
    let (mut child, addr) = serve_with(&["--isolate", "--cors"]);
    let index = get(&addr, "/").unwrap();
    let wgsl = get(&addr, "/shaders/conv3d.wgsl").unwrap();
    let escape = get(&addr, "/../../etc/passwd").unwrap();
    let missing = get(&addr, "/nope.js").unwrap();
    let model = get(&addr, "/models/mmnist-prior.safetensors").unwrap();
    child.kill().ok();
    child.wait().ok();
    assert!(index.starts_with("HTTP/1.1 200"), "{index}");
    assert!(index.contains("Cross-Origin-Opener-Policy: same-origin"));
    assert!(index.contains("Cross-Origin-Embedder-Policy: require-corp"));
    assert!(index.contains("Access-Control-Allow-Origin: *"));
    assert!(index.contains("Content-Type: text/html"));
    assert!(index.contains("<h1>videogpt-web</h1>"));
    assert!(wgsl.contains("implicit GEMM"));
    assert!(escape.starts_with("HTTP/1.1 404"), "{escape}");
    assert!(missing.starts_with("HTTP/1.1 404"));
    // a streamed file arrives whole, with its length up front
    let size = std::fs::metadata("models/mmnist-prior.safetensors").unwrap().len();
    assert!(model.contains(&format!("Content-Length: {size}")), "{}", &model[..400.min(model.len())]);
}

#[test]
fn serve_answers_while_another_client_stops_reading() {
    use std::io::Write;
    let (mut child, addr) = serve();
    // a client that asks for ~80 MB (20 pipelined model downloads) and reads none of it, like a
    // paused <video> or a stuck tab: the server's writes to it block once the socket buffers fill
    let mut stalled = std::net::TcpStream::connect(&addr).unwrap();
    for _ in 0..20 {
        write!(stalled, "GET /models/mmnist-prior.safetensors HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    let index = get(&addr, "/");
    drop(stalled);
    child.kill().ok();
    child.wait().ok();
    let index = index.expect("the page was not served while another client stalled");
    assert!(index.starts_with("HTTP/1.1 200") && index.contains("<h1>videogpt-web</h1>"), "{index}");
}

#[test]
fn compare_tokens_accepts_own_codes_and_refuses_a_changed_one() {
    let model = fixture("vqvae_444.safetensors");
    let clip = fixture("carphone_8f.npy");
    let tokens = tmp("compare-tokens.npy");
    let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&clip), "--output", s(&tokens)]);
    assert!(ok, "{err}");
    let (ok, out, err) = videogpt(&["compare-tokens", "--model", s(&model), "--input", s(&clip), "--tokens", s(&tokens)]);
    assert!(ok, "{err}");
    assert!(out.contains("identical: all 128 tokens equal"), "{out}");

    // one token swapped for another code: a real disagreement, not a rounding near-tie
    let (shape, mut codes) = read_i32_npy(&tokens);
    codes[5] = (codes[5] + 1) % 16;
    let changed = tmp("compare-tokens-changed.npy");
    let mut f = std::fs::File::create(&changed).unwrap();
    let t = videogpt::tokens::Tokens { shape: [1, shape[0] as usize, shape[1] as usize, shape[2] as usize], codes: codes.iter().map(|&c| c as u32).collect() };
    videogpt::tokens::npy::write(&mut f, &t).unwrap();
    let (ok, _, err) = videogpt(&["compare-tokens", "--model", s(&model), "--input", s(&clip), "--tokens", s(&changed)]);
    assert!(!ok);
    assert!(err.contains("position 5:") && err.contains("not a near-tie"), "{err}");
}

#[test]
fn random_prior_bundles_its_vqvae_and_samples() {
    let prior = tmp("random-prior.safetensors");
    let vq = fixture("vqvae_422.safetensors");
    let (ok, _, err) = videogpt(&[
        "random-prior",
        "--vqvae",
        s(&vq),
        "--output",
        s(&prior),
        "--hidden-dim",
        "24",
        "--heads",
        "2",
        "--layers",
        "1",
        "--attn-type",
        "full",
        "--seed",
        "3",
    ]);
    assert!(ok, "{err}");
    let bytes = std::fs::read(&prior).unwrap();
    let gpt = videogpt::gpt::Gpt::load(&bytes, None).unwrap();
    assert_eq!(gpt.config.latent, [2, 16, 16]);
    // the VQ-VAE inside is the one given, tensor for tensor
    let inside = videogpt::VqVae::load(&videogpt::Cpu, &bytes, "vqvae.").unwrap();
    assert_eq!(inside.config, videogpt::VqVae::load(&videogpt::Cpu, &std::fs::read(&vq).unwrap(), "").unwrap().config);
    let out = tmp("random-prior-sample.npy");
    let (ok, _, err) = videogpt(&["sample", "--model", s(&prior), "--output", s(&out), "--seed", "1"]);
    assert!(ok, "{err}");
    assert_eq!(videogpt::video::io::read_video(&out).unwrap().frames, 8);

    let (ok, _, err) = videogpt(&["random-prior", "--vqvae", s(&vq), "--output", s(&prior), "--hidden-dim", "25"]);
    assert!(!ok);
    assert!(err.contains("hidden_dim 25 must be a positive multiple of 3"), "{err}");
}

#[test]
fn frame_conditioned_prior_samples_from_a_frame_on_both_devices() {
    let prior = tmp("frame-prior.safetensors");
    let vq = fixture("vqvae_444.safetensors");
    let clip = fixture("carphone_8f.npy");
    let (ok, _, err) = videogpt(&[
        "random-prior",
        "--vqvae",
        s(&vq),
        "--output",
        s(&prior),
        "--hidden-dim",
        "24",
        "--heads",
        "2",
        "--layers",
        "1",
        "--attn-type",
        "full",
        "--n-cond-frames",
        "1",
    ]);
    assert!(ok, "{err}");
    let mut grids = Vec::new();
    for device in ["cpu", "gpu"] {
        let (out, tokens) = (tmp(&format!("frame-sample-{device}.npy")), tmp(&format!("frame-tokens-{device}.npy")));
        let (ok, _, err) = videogpt(&[
            "sample",
            "--model",
            s(&prior),
            "--output",
            s(&out),
            "--tokens",
            s(&tokens),
            "--cond-frame",
            s(&clip),
            "--seed",
            "2",
            "--device",
            device,
        ]);
        assert!(ok, "{device}: {err}");
        grids.push(read_i32_npy(&tokens).1);
    }
    let same = grids[0].iter().zip(&grids[1]).take_while(|(a, b)| a == b).count();
    // measured: all 128 equal (a draw within float rounding of a boundary, about 1e-6 a token,
    // would part them; at this seed none is)
    assert_eq!(same, 128, "CPU and GPU part after {same} of 128 tokens");
    let (ok, out, err) = videogpt(&["score", "--model", s(&prior), "--tokens", s(&tmp("frame-tokens-cpu.npy")), "--cond-frame", s(&clip)]);
    assert!(ok, "{err}");
    assert!(out.starts_with("clip 0: ") && out.contains("bits per token"), "{out}");
    // the frame is required, and refused by unconditional priors
    let (ok, _, err) = videogpt(&["sample", "--model", s(&prior), "--output", s(&tmp("x.npy"))]);
    assert!(!ok && err.contains("conditioned on 1 frame(s): give them with --cond-frame"), "{err}");
    let (ok, _, err) =
        videogpt(&["sample", "--model", s(&fixture("gpt_full.safetensors")), "--vqvae", s(&vq), "--output", s(&tmp("y.npy")), "--cond-frame", s(&clip)]);
    assert!(!ok && err.contains("not frame-conditioned"), "{err}");
}

#[test]
fn vgt_token_files_round_trip_and_name_their_model() {
    let model = fixture("vqvae_444.safetensors");
    let clip = fixture("carphone_8f.npy");
    let (vgt, npy) = (tmp("clip.vgt"), tmp("clip-tokens.npy"));
    for out in [&vgt, &npy] {
        let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&clip), "--output", s(out)]);
        assert!(ok, "{err}");
    }
    // 128 tokens of 6 bits: 96 bytes of indices plus the header
    let bytes = std::fs::read(&vgt).unwrap();
    assert_eq!(bytes.len(), 36 + "vqvae_444".len() + 96 + 4);
    let file = videogpt::vgt::read(&bytes).unwrap();
    assert_eq!(file.tokens.codes.iter().map(|&c| c as i32).collect::<Vec<_>>(), read_i32_npy(&npy).1);
    let (a, b) = (tmp("from-vgt.npy"), tmp("from-npy.npy"));
    for (input, out) in [(&vgt, &a), (&npy, &b)] {
        let (ok, _, err) = videogpt(&["decode", "--model", s(&model), "--input", s(input), "--output", s(out)]);
        assert!(ok, "{err}");
    }
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    // another model, or a damaged file: clear errors
    let (ok, _, err) = videogpt(&["decode", "--model", s(&fixture("vqvae_422.safetensors")), "--input", s(&vgt), "--output", s(&a)]);
    assert!(!ok && err.contains("these tokens index 64 codes (model vqvae_444)"), "{err}");
    let (ok, _, err) = videogpt(&["decode", "--model", s(&fixture("vqvae_444_f16.safetensors")), "--input", s(&vgt), "--output", s(&a)]);
    assert!(!ok && err.contains("were made with model vqvae_444"), "{err}");
    let damaged = tmp("damaged.vgt");
    std::fs::write(&damaged, &bytes[..bytes.len() - 10]).unwrap();
    let (ok, _, err) = videogpt(&["decode", "--model", s(&model), "--input", s(&damaged), "--output", s(&a)]);
    assert!(!ok && err.contains("damaged.vgt: corrupt .vgt file"), "{err}");
}

/// Outputs never replace an input (same path, or the same file through a link), and a write that
/// fails leaves the old output as it was, with no half-written file beside it.
#[test]
fn outputs_never_overwrite_inputs_and_fail_whole() {
    let model = fixture("vqvae_444.safetensors");
    let clip = tmp("own-input.npy");
    std::fs::copy(fixture("carphone_8f.npy"), &clip).unwrap();
    let before = std::fs::read(&clip).unwrap();
    let (ok, _, err) = videogpt(&["reconstruct", "--model", s(&model), "--input", s(&clip), "--output", s(&clip)]);
    assert!(!ok && err.contains("refusing to write over it"), "{err}");
    let link = tmp("own-input-link.npy");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&clip, &link).unwrap();
    let (ok, _, err) = videogpt(&["reconstruct", "--model", s(&model), "--input", s(&clip), "--output", s(&link)]);
    assert!(!ok && err.contains("refusing to write over it"), "{err}");
    let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&clip), "--output", s(&model.with_extension("npy"))]);
    assert!(ok, "{err}"); // a different file beside the model is fine
    std::fs::remove_file(model.with_extension("npy")).ok();
    assert_eq!(std::fs::read(&clip).unwrap(), before, "the input changed");

    // ffmpeg cannot write this container: the old output stays, and nothing else is left
    let dir = tmp("atomic-out");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("old.notacontainer");
    std::fs::write(&out, b"precious").unwrap();
    let (ok, _, err) = videogpt(&["reconstruct", "--model", s(&model), "--input", s(&clip), "--output", s(&out)]);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert!(!ok && errors.len() == 1 && err.trim_end().ends_with(errors[0]) && errors[0].contains("old.notacontainer"), "{err}");
    assert!(!err.contains(".partial"), "the error names the temporary file: {err}");
    assert_eq!(std::fs::read(&out).unwrap(), b"precious");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1, "a partial file was left behind");
}

/// Sizes from untrusted files are checked before anything is allocated: a token grid that would
/// decode to tens of GB, and a model whose metadata claims a huge resolution, are one-line errors.
#[test]
fn huge_sizes_in_files_are_refused_before_allocating() {
    let tokens = tmp("huge-grid.npy");
    let mut f = std::fs::File::create(&tokens).unwrap();
    let header = "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1024, 4096), }";
    let pad = 64 - (10 + header.len() + 1) % 64;
    use std::io::Write;
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&((header.len() + pad + 1) as u16).to_le_bytes()).unwrap();
    f.write_all(format!("{header}{}\n", " ".repeat(pad)).as_bytes()).unwrap();
    f.write_all(&vec![0u8; 1024 * 4096 * 4]).unwrap();
    drop(f);
    let (ok, _, err) = videogpt(&["decode", "--model", s(&fixture("vqvae_444.safetensors")), "--input", s(&tokens), "--output", s(&tmp("huge-out.npy"))]);
    assert!(!ok && err.contains("the limit is 1024 frames of 1024×1024"), "{err}");

    let bytes = std::fs::read(fixture("vqvae_444.safetensors")).unwrap();
    let (n, rest) = bytes.split_at(8);
    let len = u64::from_le_bytes(n.try_into().unwrap()) as usize;
    let header = String::from_utf8(rest[..len].to_vec()).unwrap();
    let patched = header.replacen("\"resolution\":\"32\"", "\"resolution\":\"1048576\"", 1);
    assert_ne!(patched, header, "the fixture's metadata layout changed");
    let mut file = (patched.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(patched.as_bytes());
    file.extend_from_slice(&rest[len..]);
    let model = tmp("huge-resolution.safetensors");
    std::fs::write(&model, file).unwrap();
    let (ok, _, err) = videogpt(&["reconstruct", "--model", s(&model), "--input", s(&fixture("carphone_8f.npy")), "--output", s(&tmp("hr.npy"))]);
    assert!(!ok && err.contains("past the limits"), "{err}");
}

/// Raw bytes to the server on a fresh connection; the response as text.
fn raw(addr: &str, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(std::time::Duration::from_secs(20))).unwrap();
    let _ = stream.write_all(request);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// The abuse that used to crash or leak: a huge declared body, dot-files, another Host (DNS
/// rebinding), an oversized head, other methods, path tricks, idle connections holding workers,
/// and more connections than workers and queue. The server answers each with an error and keeps
/// serving the page.
#[test]
fn serve_refuses_abuse_and_stays_up() {
    let (mut child, addr) = serve();
    let host = format!("Host: {addr}\r\n");
    let get = |path: &str| raw(&addr, format!("GET {path} HTTP/1.1\r\n{host}Connection: close\r\n\r\n").as_bytes());
    let post = raw(&addr, format!("POST / HTTP/1.1\r\n{host}Content-Length: 35184372088832\r\n\r\n").as_bytes());
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let huge_get = raw(&addr, format!("GET / HTTP/1.1\r\n{host}Content-Length: 35184372088832\r\n\r\n").as_bytes());
    assert!(huge_get.starts_with("HTTP/1.1 413"), "{huge_get}");
    assert!(get("/.git/config").starts_with("HTTP/1.1 404"));
    assert!(get("/models/.hidden").starts_with("HTTP/1.1 404"));
    for trick in ["/..%2f..%2fetc/passwd", "/www/..\\..\\Cargo.toml", "/C:/Windows/win.ini", "//etc/passwd", "/www/../Cargo.toml"] {
        let r = get(trick);
        assert!(r.starts_with("HTTP/1.1 404"), "{trick}: {r}");
    }
    let rebinding = raw(&addr, b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n");
    assert!(rebinding.starts_with("HTTP/1.1 421"), "{rebinding}");
    let no_host = raw(&addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(no_host.starts_with("HTTP/1.1 421"), "{no_host}");
    let big_head = raw(&addr, format!("GET / HTTP/1.1\r\n{host}X-Pad: {}\r\n\r\n", "a".repeat(20_000)).as_bytes());
    assert!(big_head.starts_with("HTTP/1.1 431"), "{big_head}");
    assert!(raw(&addr, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n").starts_with("HTTP/1.1 400"));
    // idle connections (slowloris) and a flood of connections: the page is still served
    let idle: Vec<_> = (0..100).filter_map(|_| std::net::TcpStream::connect(&addr).ok()).collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let flooded = get("/");
    assert!(flooded.starts_with("HTTP/1.1 200") || flooded.starts_with("HTTP/1.1 503"), "{flooded}");
    drop(idle);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let index = get("/");
    child.kill().ok();
    child.wait().ok();
    assert!(index.starts_with("HTTP/1.1 200") && index.contains("<h1>videogpt-web</h1>"), "{index}");
}

/// `reconstruct --stream`: y4m in, y4m out, each 4-frame chunk with the chunk before it as context:
/// chunk k equals the last four frames of an ordinary reconstruction of frames 4k−4..4k+4.
#[test]
fn streamed_reconstruction_is_each_chunk_with_its_context() {
    use videogpt::video::io::{read_video, write_video};
    let model = fixture("vqvae_444.safetensors");
    let clip = read_video(&fixture("carphone_8f.npy")).unwrap();
    let clip = videogpt::video::Video::concat(&[clip.clone(), clip.slice(0, 4)]).unwrap(); // 12 frames
    let input = tmp("stream-in.y4m");
    write_video(&input, &clip).unwrap();
    let streamed = tmp("stream-out.y4m");
    let _ = std::fs::remove_file(&streamed);
    let (ok, _, err) = videogpt(&["reconstruct", "--stream", "--model", s(&model), "--input", s(&input), "--output", s(&streamed)]);
    assert!(ok, "{err}");
    assert_eq!(err.lines().filter(|l| l.starts_with("chunk ")).count(), 3, "{err}");
    let out = read_video(&streamed).unwrap();
    assert_eq!(out.frames, 12);
    // the frames the stream read (after its own y4m round trip) reconstructed offline, window by window
    let seen = read_video(&input).unwrap();
    for k in 1..3 {
        let window = tmp(&format!("stream-window-{k}.npy"));
        write_video(&window, &seen.slice(4 * k - 4, 8)).unwrap();
        let want = tmp(&format!("stream-window-{k}-out.y4m"));
        let _ = std::fs::remove_file(&want);
        assert!(videogpt(&["reconstruct", "--model", s(&model), "--input", s(&window), "--output", s(&want)]).0);
        let want = read_video(&want).unwrap().slice(4, 4);
        assert!(out.slice(4 * k, 4).rgb == want.rgb, "chunk {k} differs from the offline reconstruction of its window");
    }
    // from stdin to stdout works the same
    let piped = std::process::Command::new(env!("CARGO_BIN_EXE_videogpt"))
        .args(["reconstruct", "--stream", "--model", s(&model), "--input", "-", "--output", "-"])
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(piped.status.success());
    assert_eq!(piped.stdout, std::fs::read(&streamed).unwrap());
}

#[test]
fn encode_splits_a_folder_into_shards_that_cover_every_clip_once() {
    // five clips in a folder tree (one in a subfolder, one that is no video) and a list file
    let dir = tmp("dataset");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("more")).unwrap();
    let clip = videogpt::video::io::read_video(&fixture("carphone_8f.npy")).unwrap();
    let names = ["a.npy", "b.npy", "more/c.npy", "d.npy"];
    for (i, name) in names.iter().enumerate() {
        let part = videogpt::video::Video::concat(&[clip.slice(i, 8 - i), clip.slice(0, i)]).unwrap();
        videogpt::video::io::write_video(&dir.join(name), &part).unwrap();
    }
    std::fs::write(dir.join("broken.npy"), b"not a video").unwrap();
    std::fs::write(dir.join("notes.md"), b"not listed: not a video extension").unwrap();
    let model = fixture("vqvae_444.safetensors");
    let out = tmp("dataset-tokens");
    let _ = std::fs::remove_dir_all(&out);
    let mut seen = std::collections::BTreeMap::new();
    for shard in ["0/2", "1/2"] {
        let (ok, stdout, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&dir), "--output", s(&out), "--shard", shard]);
        // the broken clip fails its shard (exit 1, named), after the others are written
        let has_broken = err.contains("broken.npy");
        assert_eq!(ok, !has_broken, "shard {shard}: {err}");
        assert!(stdout.contains(&format!("shard {shard}: encoded ")) && stdout.contains("clips/s"), "{stdout}");
        let manifest = std::fs::read_to_string(out.join(format!("manifest-{}-of-2.jsonl", &shard[..1]))).unwrap();
        for line in manifest.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let input = row["input"].as_str().unwrap().to_string();
            assert!(seen.insert(input.clone(), row.clone()).is_none(), "{input} is in both shards");
        }
    }
    // every clip once, in one shard or the other; the broken one with its error
    let inputs: Vec<String> = seen.keys().map(|k| k.rsplit("dataset/").next().unwrap().to_string()).collect();
    assert_eq!(inputs, ["a.npy", "b.npy", "broken.npy", "d.npy", "more/c.npy"]);
    assert!(seen.values().any(|r| r["error"].as_str().is_some_and(|e| e.contains("npy"))));
    // each token file holds what `videogpt encode` gives that clip alone
    for (input, row) in seen.iter().filter(|(_, r)| r.get("tokens").is_some()) {
        let single = tmp("dataset-single.npy");
        let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", input, "--output", s(&single)]);
        assert!(ok, "{err}");
        let file = out.join(row["tokens"].as_str().unwrap());
        assert_eq!(read_i32_npy(&file), read_i32_npy(&single), "{input}");
        assert_eq!(row["shape"], serde_json::json!([1, 2, 8, 8]));
    }
    // a second run of a shard resumes: nothing encoded again
    let (_, stdout, _) = videogpt(&["encode", "--model", s(&model), "--input", s(&dir), "--output", s(&out), "--shard", "0/2"]);
    assert!(stdout.contains("encoded 0 clips") && stdout.contains("already done"), "{stdout}");
    // a list file names clips relative to itself
    std::fs::write(dir.join("list.txt"), "a.npy\nmore/c.npy\n").unwrap();
    let listed = tmp("dataset-list-tokens");
    let _ = std::fs::remove_dir_all(&listed);
    let (ok, stdout, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&dir.join("list.txt")), "--output", s(&listed)]);
    assert!(ok && stdout.contains("encoded 2 clips"), "{stdout} {err}");
    // bad shards and a shard of one clip are refused
    for (shard, want) in [("2/2", "must be below the number of shards"), ("1", "is not i/n"), ("a/2", "is not a number")] {
        let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&dir), "--output", s(&out), "--shard", shard]);
        assert!(!ok && err.contains(want), "{shard}: {err}");
    }
    let (ok, _, err) = videogpt(&["encode", "--model", s(&model), "--input", s(&dir.join("a.npy")), "--output", s(&tmp("x.npy")), "--shard", "0/2"]);
    assert!(!ok && err.contains("--shard splits a dataset"), "{err}");
}
