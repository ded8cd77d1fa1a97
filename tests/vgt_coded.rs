//! `.vgt` version 2: tokens coded under the prior (`src/entropy.rs`). Real Moving MNIST test
//! clips coded with the shipped `mmnist-prior`; the same file decoded in processes that run every
//! CPU kernel this processor has (the entropy model must not depend on any of them); damaged
//! files and the wrong prior refused with errors that say so.

mod common;

use common::{root, s, tmp, videogpt};
use videogpt::gpt::Gpt;
use videogpt::vgt::{self, CodingPrior, TokenFile};

fn model(id: &str) -> std::path::PathBuf {
    root().join(format!("models/{id}.safetensors"))
}

/// The first `n` of the 256 Moving MNIST test clips' tokens (mmnist, `videogpt encode`; the
/// fixture the prior's documented score is measured on), one file each.
fn test_clips(n: usize) -> Vec<TokenFile> {
    let all = vgt::read(&std::fs::read(root().join("tests/fixtures/mmnist_test_tokens.vgt")).unwrap()).unwrap();
    all.tokens
        .clips()
        .take(n)
        .map(|clip| TokenFile { tokens: videogpt::tokens::Tokens { shape: [1, 4, 16, 16], codes: clip.to_vec() }, fps: Some(30.0), ..all.clone() })
        .collect()
}

#[test]
fn moving_mnist_test_clips_code_to_a_fraction_of_their_bit_packed_size_and_decode_exactly() {
    let bytes = std::fs::read(model("mmnist-prior")).unwrap();
    let gpt = Gpt::load(&bytes, None).unwrap();
    let prior = CodingPrior::new(&gpt, &bytes);
    let (mut plain_total, mut coded_total) = (0, 0);
    for (i, f) in test_clips(4).iter().enumerate() {
        let plain = vgt::write(f).unwrap();
        let coded = vgt::write_coded(f, &prior, |_, _| {}).unwrap();
        let back = vgt::read_with(&coded, Some(&prior), |_, _| {}).unwrap();
        assert_eq!(&back, f, "clip {i} decodes to other tokens");
        // the range coder spends what the prior's probabilities say, to within a few bytes
        let bits = gpt.bits_per_token(&f.tokens.codes, None).unwrap();
        let payload = vgt::header(&coded).unwrap().payload_bytes;
        let ideal = bits * 1024.0 / 8.0;
        assert!((payload as f64) < ideal + 8.0, "clip {i}: {payload} coded bytes for {ideal:.1} bytes of information");
        println!(
            "clip {i}: {bits:.3} bits per token, {} bytes coded against {} bit-packed ({:.1} %)",
            coded.len(),
            plain.len(),
            100.0 * coded.len() as f64 / plain.len() as f64
        );
        plain_total += plain.len();
        coded_total += coded.len();
    }
    let share = coded_total as f64 / plain_total as f64;
    println!("4 clips: {coded_total} bytes coded against {plain_total} ({:.1} %)", 100.0 * share);
    // measured: 29.5, 32.5, 30.6 and 30.3 % (30.7 % in all) with the shipped mmnist-prior, whose
    // held-out mean is 2.275 bits per token; issue 32 asked for a test clip at 30 % or less
    assert!(share <= 0.33, "coded files are {:.1} % of the bit-packed ones", 100.0 * share);
}

#[test]
fn natural_test_windows_code_to_the_natural_priors_bits_per_token() {
    // the first windows of the held-out natural clips (the fixture the natural prior's documented
    // 6.886 bits per token is measured on), coded under natural-64-prior: the file shrinks by the
    // prior's bits against 10-bit packing, to within the header and a few bytes
    let all = vgt::read(&std::fs::read(root().join("tests/fixtures/natural64_test_tokens.vgt")).unwrap()).unwrap();
    let bytes = std::fs::read(model("natural-64-prior")).unwrap();
    let gpt = Gpt::load(&bytes, None).unwrap();
    let prior = CodingPrior::new(&gpt, &bytes);
    for (i, clip) in all.tokens.clips().take(2).enumerate() {
        let f = TokenFile { tokens: videogpt::tokens::Tokens { shape: [1, 4, 16, 16], codes: clip.to_vec() }, ..all.clone() };
        let (plain, coded) = (vgt::write(&f).unwrap(), vgt::write_coded(&f, &prior, |_, _| {}).unwrap());
        assert_eq!(vgt::read_with(&coded, Some(&prior), |_, _| {}).unwrap(), f);
        let bits = gpt.bits_per_token(clip, None).unwrap();
        let (plain_payload, coded_payload) = (vgt::header(&plain).unwrap().payload_bytes, vgt::header(&coded).unwrap().payload_bytes);
        println!(
            "natural window {i}: {bits:.3} bits per token; {coded_payload} coded bytes against {plain_payload} packed; files {} and {} bytes",
            coded.len(),
            plain.len()
        );
        assert!((coded_payload as f64) < bits * 1024.0 / 8.0 + 8.0 && coded.len() < plain.len(), "window {i}");
    }
}

#[test]
fn a_file_coded_here_decodes_to_the_same_tokens_with_every_cpu_kernel() {
    // Encoded by the default kernel (AVX-512 where the processor has it), decoded in processes
    // that run each kernel this processor has. The file's checksum covers the decoded tokens, so
    // a decode that computed other probabilities fails; and the video decoded from it must be
    // the one its bit-packed twin decodes to in the same process.
    let clip = root().join("tests/fixtures/mmnist_test0.npy");
    let (coded, plain) = (tmp("kernels-coded.vgt"), tmp("kernels-plain.vgt"));
    let (mmnist, prior) = (model("mmnist"), model("mmnist-prior"));
    let (ok, _, err) = videogpt(&["encode", "--model", s(&mmnist), "--input", s(&clip), "--output", s(&coded), "--prior", s(&prior)]);
    assert!(ok, "{err}");
    assert!(err.contains("bits per token"), "{err}");
    let (ok, _, err) = videogpt(&["encode", "--model", s(&mmnist), "--input", s(&clip), "--output", s(&plain)]);
    assert!(ok, "{err}");
    let kernels = videogpt::cpu::Microkernel::supported();
    assert!(kernels.contains(&videogpt::cpu::Microkernel::Portable));
    for kernel in kernels {
        let name = kernel.name();
        let decode = |input: &std::path::Path, output: &std::path::Path, extra: &[&str]| {
            let mut args = vec!["decode", "--model", s(&mmnist), "--input", s(input), "--output", s(output)];
            args.extend_from_slice(extra);
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_videogpt")).args(&args).env("VIDEOGPT_CPU_KERNEL", name).output().unwrap();
            assert!(out.status.success(), "VIDEOGPT_CPU_KERNEL={name} videogpt {args:?}: {}", String::from_utf8_lossy(&out.stderr));
            std::fs::read(output).unwrap()
        };
        let from_coded = decode(&coded, &tmp(&format!("{name}-coded.npy")), &["--prior", s(&prior)]);
        let from_plain = decode(&plain, &tmp(&format!("{name}-plain.npy")), &[]);
        assert!(from_coded == from_plain, "with the {name} kernel the coded file decodes to another clip");
    }
}

#[test]
fn a_coded_file_needs_its_own_prior_and_refuses_damage() {
    let bytes = std::fs::read(model("mmnist-prior")).unwrap();
    let gpt = Gpt::load(&bytes, None).unwrap();
    let prior = CodingPrior::new(&gpt, &bytes);
    let f = &test_clips(1)[0];
    let good = vgt::write_coded(f, &prior, |_, _| {}).unwrap();
    let hash = vgt::hex(&prior.hash);

    // without a prior, or with another: the error names the prior the file needs
    let e = vgt::read(&good).unwrap_err().to_string();
    assert!(e.contains(&format!("coded under prior {hash}")), "{e}");
    let other = CodingPrior { gpt: &gpt, hash: [9; 16] };
    let e = vgt::read_with(&good, Some(&other), |_, _| {}).unwrap_err().to_string();
    assert!(e.contains(&format!("coded under prior {hash}, not this one")), "{e}");
    // the header reads without the prior
    let h = vgt::header(&good).unwrap();
    assert_eq!((h.version, h.shape, h.prior_hash, h.model_id.as_str()), (2, [1, 4, 16, 16], Some(prior.hash), f.model_id.as_str()));

    // every truncation, and a flipped bit anywhere, is an error (never a panic, never other tokens)
    let read = |b: &[u8]| vgt::read_with(b, Some(&prior), |_, _| {});
    for cut in [0, 4, 5, 20, 46, 47, good.len() / 2, good.len() - 5, good.len() - 1] {
        assert!(read(&good[..cut]).is_err(), "the file cut to {cut} bytes was read");
    }
    for at in [5, 8, 20, 40, 60, good.len() / 2, good.len() - 10, good.len() - 2] {
        let mut b = good.clone();
        b[at] ^= 0x10;
        match read(&b) {
            Err(e) => assert!(e.to_string().contains(".vgt") || e.to_string().contains("prior"), "byte {at}: {e}"),
            Ok(back) => panic!("a flipped bit at byte {at} read as {:?}", &back.tokens.codes[..8]),
        }
    }
    // damage made to look intact (the file's checksum recomputed, as anyone writing a link can):
    // each flipped bit in the coded words or the tokens' checksum is an error, or changes nothing
    // (the coder's last word has free bits); it never gives other tokens
    let words_at = good.len() - 8 - h.payload_bytes;
    for at in (words_at..good.len() - 4).step_by(23) {
        let mut b = good.clone();
        b[at] ^= 0x04;
        let n = b.len() - 4;
        let crc = crc32fast::hash(&b[..n]);
        b[n..].copy_from_slice(&crc.to_le_bytes());
        if let Ok(back) = read(&b) {
            assert_eq!(&back, f, "a flipped bit at byte {at} (checksum fixed up) decoded to other tokens");
        }
    }
    // a prior over another codebook
    let natural = std::fs::read(model("natural-64-prior")).unwrap();
    let natural_gpt = Gpt::load(&natural, None).unwrap();
    let e = vgt::write_coded(f, &CodingPrior::new(&natural_gpt, &natural), |_, _| {}).unwrap_err().to_string();
    assert!(e.contains("these tokens index 256 codes; the prior was trained over 1024"), "{e}");
}

#[test]
fn the_cli_names_the_prior_a_coded_file_needs_and_info_reads_its_header() {
    let clip = root().join("tests/fixtures/mmnist_test0.npy");
    let coded = tmp("cli-coded.vgt");
    let (mmnist, prior) = (model("mmnist"), model("mmnist-prior"));
    let (ok, _, err) = videogpt(&["encode", "--model", s(&mmnist), "--input", s(&clip), "--output", s(&coded), "--prior", s(&prior)]);
    assert!(ok, "{err}");
    let hash = vgt::hex(&vgt::model_hash(&std::fs::read(&prior).unwrap()));
    let (ok, _, err) = videogpt(&["decode", "--model", s(&mmnist), "--input", s(&coded), "--output", s(&tmp("cli-out.npy"))]);
    assert!(!ok && err.contains(&format!("coded under prior {hash}")) && err.contains("--prior"), "{err}");
    let (ok, _, err) =
        videogpt(&["decode", "--model", s(&mmnist), "--input", s(&coded), "--output", s(&tmp("cli-out2.npy")), "--prior", s(&model("natural-64-prior"))]);
    assert!(!ok && err.contains(&format!("coded under prior {hash}, not this one")), "{err}");
    let (ok, out, err) = videogpt(&["info", s(&coded)]);
    assert!(ok, "{err}");
    assert!(out.contains("version 2") && out.contains(&hash) && out.contains("1024 = 1×4×16×16"), "{out}");
    // --prior codes .vgt output only
    let (ok, _, err) = videogpt(&["encode", "--model", s(&mmnist), "--input", s(&clip), "--output", s(&tmp("x.npy")), "--prior", s(&prior)]);
    assert!(!ok && err.contains("--prior"), "{err}");
}
