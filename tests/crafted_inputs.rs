//! The crafted-input suite: the CLI on every class of hostile input found so far (by hand, by
//! issue reports and by tests/fuzz.rs), each under a memory limit. Every case must end with exit
//! code 1 and a single `error:` line, never a panic (101), an abort (134) or a kill for memory,
//! and must leave every input file as it was. docs/reliability.md lists the classes.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{fixture, s, tmp};

/// Virtual memory each case may use (KiB): far above what a 64×64 model needs, far below what
/// any of these files would make a careless reader allocate.
const MEMORY_LIMIT_KIB: u64 = 4 << 20;

fn write(name: &str, bytes: &[u8]) -> PathBuf {
    let p = tmp(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn npy(name: &str, header: &str, data: &[u8]) -> PathBuf {
    let pad = 64 - (10 + header.len() + 1) % 64;
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&((header.len() + pad + 1) as u16).to_le_bytes());
    b.extend_from_slice(format!("{header}{}\n", " ".repeat(pad)).as_bytes());
    b.extend_from_slice(data);
    write(name, &b)
}

/// A model file with its metadata value `key` replaced.
fn model_with(name: &str, key: &str, value: &str) -> PathBuf {
    let bytes = std::fs::read(fixture("vqvae_444.safetensors")).unwrap();
    write(name, &common::with_metadata(&bytes, |m| drop(m.insert(key.into(), value.into()))))
}

/// A .vgt file with a valid CRC over a header claiming a `b×t×h×w` grid (u16 each, at byte 12:
/// docs/vgt-format.md) over one token's worth of data.
fn vgt_claiming(name: &str, grid: [u16; 4]) -> PathBuf {
    let model = std::fs::read(fixture("vqvae_444.safetensors")).unwrap();
    let f = videogpt::vgt::TokenFile {
        model_id: "vqvae_444".into(),
        model_hash: videogpt::vgt::model_hash(&model),
        n_codes: 64,
        tokens: videogpt::tokens::Tokens { shape: [1, 1, 1, 1], codes: vec![0] },
        fps: None,
    };
    let mut b = videogpt::vgt::write(&f).unwrap();
    assert_eq!(&b[12..20], &[1, 0, 1, 0, 1, 0, 1, 0], "the grid's place in the header moved");
    for (i, d) in grid.iter().enumerate() {
        b[12 + 2 * i..14 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    let n = b.len() - 4;
    let crc = crc32fast::hash(&b[..n]);
    b[n..].copy_from_slice(&crc.to_le_bytes());
    write(name, &b)
}

struct Case {
    name: &'static str,
    args: Vec<String>,
    inputs: Vec<PathBuf>,
    /// what the one error line must say
    says: &'static str,
}

fn case(name: &'static str, args: &[&str], inputs: &[&Path], says: &'static str) -> Case {
    Case { name, args: args.iter().map(|a| a.to_string()).collect(), inputs: inputs.iter().map(|p| p.to_path_buf()).collect(), says }
}

#[test]
#[cfg(unix)]
fn every_crafted_input_is_one_error_line_under_a_memory_limit() {
    let model = fixture("vqvae_444.safetensors");
    let clip_src = fixture("carphone_8f.npy");
    let clip = tmp("crafted-clip.npy");
    std::fs::copy(&clip_src, &clip).unwrap();
    let link = tmp("crafted-clip-link.npy");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&clip, &link).unwrap();
    let out = tmp("crafted-out.npy");

    let y4m_utf8 = write("crafted-utf8.y4m", b"YUV4MPEG2 W8 H8 \xc2\xa9\n");
    let y4m_huge = write("crafted-huge.y4m", b"YUV4MPEG2 W1000000 H1000000 F30:1 C444\nFRAME\n\x00\x00");
    let y4m_truncated = write("crafted-short.y4m", b"YUV4MPEG2 W64 H64 F30:1 C420jpeg\nFRAME\n\x10\x10\x10");
    let npy_huge = npy("crafted-huge-shape.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (1099511627776, 1048576, 1048576, 3), }", &[0; 64]);
    let npy_short = npy("crafted-short-data.npy", "{'descr': '|u1', 'fortran_order': False, 'shape': (16, 64, 64, 3), }", &[0; 100]);
    let npy_float = npy("crafted-float.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 8, 8, 3), }", &[0; 4 * 8 * 8 * 3 * 4]);
    let tokens_huge = npy("crafted-huge-grid.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1024, 4096), }", &vec![0; 1024 * 4096 * 4]);
    let tokens_neg = npy("crafted-negative.npy", "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 16, 16), }", &[0xff; 2 * 16 * 16 * 4]);
    let vgt_huge = vgt_claiming("crafted-huge.vgt", [1, 65_535, 65_535, 65_535]);
    let vgt_wrap = vgt_claiming("crafted-wrap.vgt", [65_535, 65_535, 1, 1]); // ~2^32: wraps a 32-bit size
    let model_res = model_with("crafted-res.safetensors", "resolution", "1048576");
    let model_seq = model_with("crafted-seq.safetensors", "sequence_length", "18446744073709551615");
    let model_ds = model_with("crafted-ds.safetensors", "downsample", "4,4,4,4");
    let model_codes = model_with("crafted-codes.safetensors", "n_codes", "4294967296");
    let truncated = {
        let b = std::fs::read(&model).unwrap();
        write("crafted-truncated.safetensors", &b[..b.len() / 2])
    };
    let header_len = write("crafted-header.safetensors", &u64::MAX.to_le_bytes());
    let evil = fixture("ckpt_evil_system.ckpt");
    let junk_mp4 = write("crafted-junk.mp4", b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2\xff\xff\xff\xffmoov");

    // a model whose name says .npy, so that the output check is what stops the command
    let model_npy = tmp("crafted-model.npy");
    std::fs::copy(&model, &model_npy).unwrap();
    let m = s(&model);
    let o = s(&out);
    let cases = vec![
        case("y4m tag with a multi-byte character", &["reconstruct", "--model", m, "--input", s(&y4m_utf8), "--output", o], &[&y4m_utf8], "y4m"),
        case("y4m of 10^12 pixels a frame", &["encode", "--model", m, "--input", s(&y4m_huge), "--output", o], &[&y4m_huge], "y4m"),
        case("y4m cut inside a frame", &["encode", "--model", m, "--input", s(&y4m_truncated), "--output", o], &[&y4m_truncated], "y4m"),
        case("npy whose shape multiplies past 2^64", &["encode", "--model", m, "--input", s(&npy_huge), "--output", o], &[&npy_huge], ".npy"),
        case(
            "npy with less data than its shape",
            &["encode", "--model", m, "--input", s(&npy_short), "--output", o],
            &[&npy_short],
            "truncated or corrupt .npy data",
        ),
        case("npy of floats as a video", &["encode", "--model", m, "--input", s(&npy_float), "--output", o], &[&npy_float], "uint8"),
        case("tokens 1×1024×4096 (tens of GB decoded)", &["decode", "--model", m, "--input", s(&tokens_huge), "--output", o], &[&tokens_huge], "limit"),
        case("negative tokens", &["decode", "--model", m, "--input", s(&tokens_neg), "--output", o], &[&tokens_neg], "negative"),
        case(
            ".vgt with a valid CRC claiming 2^48 tokens",
            &["decode", "--model", m, "--input", s(&vgt_huge), "--output", o],
            &[&vgt_huge],
            "corrupt .vgt file (token grid [1, 65535, 65535, 65535])",
        ),
        case(
            ".vgt whose grid wraps 32 bits",
            &["decode", "--model", m, "--input", s(&vgt_wrap), "--output", o],
            &[&vgt_wrap],
            "corrupt .vgt file (token grid [65535, 65535, 1, 1])",
        ),
        case("model resolution 1048576", &["reconstruct", "--model", s(&model_res), "--input", s(&clip), "--output", o], &[&model_res, &clip], "limits"),
        case("model sequence_length 2^64-1", &["info", s(&model_seq)], &[&model_seq], "sequence_length 18446744073709551615 is past the limits (1024, 1024)"),
        case("model with four downsample factors", &["info", s(&model_ds)], &[&model_ds], "downsample"),
        case("model with 2^32 codes", &["info", s(&model_codes)], &[&model_codes], "n_codes"),
        case("truncated model", &["encode", "--model", s(&truncated), "--input", s(&clip), "--output", o], &[&truncated, &clip], "safetensors"),
        case("safetensors header length 2^64-1", &["info", s(&header_len)], &[&header_len], "safetensors"),
        case("checkpoint whose pickle calls os.system", &["convert", "--input", s(&evil), "--output", o], &[&evil], "posix.system"),
        case("output is the input", &["reconstruct", "--model", m, "--input", s(&clip), "--output", s(&clip)], &[&clip], "refusing to write over it"),
        case("output is a link to the input", &["reconstruct", "--model", m, "--input", s(&clip), "--output", s(&link)], &[&clip], "refusing to write over it"),
        case(
            "output is the model",
            &["encode", "--model", s(&model_npy), "--input", s(&clip), "--output", s(&model_npy)],
            &[&model_npy],
            "refusing to write over it",
        ),
        case("an mp4 that is not one", &["encode", "--model", m, "--input", s(&junk_mp4), "--output", o], &[&junk_mp4], "crafted-junk.mp4"),
    ];

    let n = cases.len();
    for c in cases {
        let _ = std::fs::remove_file(&out);
        let before: Vec<Vec<u8>> = c.inputs.iter().map(|p| std::fs::read(p).unwrap()).collect();
        let quoted: Vec<String> = c.args.iter().map(|a| format!("'{a}'")).collect();
        let script = format!("ulimit -v {MEMORY_LIMIT_KIB}; exec '{}' {}", env!("CARGO_BIN_EXE_videogpt"), quoted.join(" "));
        let run = Command::new("sh").args(["-c", &script]).output().unwrap();
        let err = String::from_utf8_lossy(&run.stderr);
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(run.status.code(), Some(1), "{}: exit {:?} (a panic is 101, an abort 134); stderr: {err}", c.name, run.status);
        assert!(errors.len() == 1 && !err.contains("panicked"), "{}: not one error line: {err}", c.name);
        assert!(errors[0].contains(c.says), "{}: the error does not say {:?}: {}", c.name, c.says, errors[0]);
        for (p, b) in c.inputs.iter().zip(&before) {
            assert_eq!(&std::fs::read(p).unwrap(), b, "{}: input {} changed", c.name, p.display());
        }
        assert!(c.args[0] == "info" || !out.exists() || c.name.starts_with("output"), "{}: an output was written", c.name);
        eprintln!("{:45} {}", c.name, errors[0]);
    }
    eprintln!("{n} crafted inputs: each one error line, exit 1, inputs unchanged, under a {} GiB memory limit", MEMORY_LIMIT_KIB >> 20);
}
