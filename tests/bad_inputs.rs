//! Every bad input gets a clear error naming the problem, never a panic.

mod common;
use common::*;
use safetensors::tensor::{serialize, Dtype, TensorView};
use safetensors::SafeTensors;
use videogpt::backend::{Backend, Dims, Volume};
use videogpt::tokens::{self, Tokens};
use videogpt::video::io::{read_npy, read_y4m};
use videogpt::{Cpu, Error, VqVae, VqVaeConfig};

fn load_err(bytes: &[u8]) -> String {
    match VqVae::load(&Cpu, bytes, "") {
        Ok(_) => panic!("loaded a bad file"),
        Err(e @ Error::Weights(_)) => e.to_string(),
        Err(e) => panic!("wrong error kind: {e}"),
    }
}

/// The fixture with `edit` applied to its tensor list and metadata.
fn rewrite(edit: impl FnOnce(&mut Vec<(String, Dtype, Vec<usize>, Vec<u8>)>, &mut std::collections::HashMap<String, String>)) -> Vec<u8> {
    let bytes = read("vqvae_444.safetensors");
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    let mut tensors: Vec<_> = st.iter().map(|(k, v)| (k.to_string(), v.dtype(), v.shape().to_vec(), v.data().to_vec())).collect();
    edit(&mut tensors, &mut meta);
    let views: Vec<(String, TensorView)> = tensors.iter().map(|(k, d, s, b)| (k.clone(), TensorView::new(*d, s.clone(), b).unwrap())).collect();
    serialize(views, Some(meta)).unwrap()
}

#[test]
fn truncated_weights() {
    let bytes = read("vqvae_444.safetensors");
    for cut in [0, 7, 100, bytes.len() / 2, bytes.len() - 1] {
        let msg = load_err(&bytes[..cut]);
        assert!(msg.contains("safetensors"), "{msg}");
    }
}

#[test]
fn garbage_weights() {
    let msg = load_err(b"this is not a model at all, just some text that is long enough");
    assert!(msg.contains("safetensors"), "{msg}");
}

#[test]
fn missing_tensor_is_named() {
    let bytes = rewrite(|t, _| t.retain(|(k, ..)| k != "decoder.convts.1.convt.bias"));
    let msg = load_err(&bytes);
    assert!(msg.contains("missing tensor `decoder.convts.1.convt.bias`"), "{msg}");
}

#[test]
fn misshaped_tensor_is_named() {
    let bytes = rewrite(|t, _| {
        let e = t.iter_mut().find(|(k, ..)| k == "encoder.conv_last.conv.bias").unwrap();
        e.2 = vec![e.2[0] / 2];
        e.3.truncate(e.3.len() / 2);
    });
    let msg = load_err(&bytes);
    assert!(msg.contains("`encoder.conv_last.conv.bias` has shape [16], expected [32]"), "{msg}");
}

#[test]
fn extra_tensor_is_named() {
    let bytes = rewrite(|t, _| t.push(("encoder.convs.2.conv.bias".into(), Dtype::F32, vec![1], vec![0; 4])));
    let msg = load_err(&bytes);
    assert!(msg.contains("unexpected tensor `encoder.convs.2.conv.bias`"), "{msg}");
}

#[test]
fn wrong_dtype_is_named() {
    let bytes = rewrite(|t, _| {
        let e = t.iter_mut().find(|(k, ..)| k == "pre_vq_conv.conv.bias").unwrap();
        e.1 = Dtype::I32;
    });
    let msg = load_err(&bytes);
    assert!(msg.contains("`pre_vq_conv.conv.bias` has dtype I32"), "{msg}");
}

#[test]
fn non_finite_weight_is_named() {
    let bytes = rewrite(|t, _| {
        let e = t.iter_mut().find(|(k, ..)| k == "codebook.embeddings").unwrap();
        e.3[8..12].copy_from_slice(&f32::NAN.to_le_bytes());
    });
    let msg = load_err(&bytes);
    assert!(msg.contains("`codebook.embeddings` holds a non-finite value at element 2"), "{msg}");
}

#[test]
fn bad_metadata() {
    let cases: [(&str, Option<&str>, &str); 7] = [
        ("downsample", Some("4,4"), "three factors"),
        ("downsample", Some("3,4,4"), "power of two"),
        ("downsample", Some("2,2,2"), "at least two strided convs"),
        ("n_hiddens", Some("thirty"), "not a whole number"),
        ("n_hiddens", Some("33"), "must be even"),
        ("resolution", Some("30"), "not a positive multiple"),
        ("n_codes", None, "metadata has no `n_codes`"),
    ];
    for (key, value, expect) in cases {
        let bytes = rewrite(|_, m| match value {
            Some(v) => {
                m.insert(key.into(), v.into());
            }
            None => {
                m.remove(key);
            }
        });
        let msg = load_err(&bytes);
        assert!(msg.contains(expect), "{key}={value:?}: {msg}");
    }
}

#[test]
fn hparams_that_disagree_with_the_tensors() {
    // metadata says 3 residual layers, the file holds 2
    let msg = load_err(&rewrite(|_, m| {
        m.insert("n_res_layers".into(), "3".into());
    }));
    assert!(msg.contains("missing tensor `encoder.res_stack.2.block.0.weight`"), "{msg}");
    // metadata says 8 codes, the file holds 64
    let msg = load_err(&rewrite(|_, m| {
        m.insert("n_codes".into(), "8".into());
    }));
    assert!(msg.contains("`codebook.embeddings` has shape [64, 16], expected [8, 16]"), "{msg}");
}

#[test]
fn clip_sizes_that_do_not_fit_the_strides() {
    let model = VqVae::load(&Cpu, &read("vqvae_444.safetensors"), "").unwrap();
    for (t, h, w) in [(6, 32, 32), (8, 30, 32), (8, 32, 18), (0, 32, 32)] {
        let x = Volume { dims: Dims::new(3, t, h, w), data: vec![0.0; 3 * t * h * w] };
        let err = pollster::block_on(model.encode_volume(&Cpu, &x)).unwrap_err();
        assert!(matches!(err, Error::Input(_)) && err.to_string().contains("does not fit downsample 4,4,4"), "{err}");
    }
    let gray = Volume { dims: Dims::new(1, 8, 32, 32), data: vec![0.0; 8 * 32 * 32] };
    let err = pollster::block_on(model.encode_volume(&Cpu, &gray)).unwrap_err();
    assert!(err.to_string().contains("3 channels"), "{err}");
}

#[test]
fn tokens_out_of_range_or_misshaped() {
    let model = VqVae::load(&Cpu, &read("vqvae_444.safetensors"), "").unwrap();
    let err = pollster::block_on(model.decode_codes(&Cpu, &[0, 1, 64, 2], [1, 2, 2])).unwrap_err();
    assert!(err.to_string().contains("token 64 (position 2) is out of range for a codebook of 64 codes"), "{err}");
    let err = pollster::block_on(model.decode_codes(&Cpu, &[0, 1, 2], [1, 2, 2])).unwrap_err();
    assert!(err.to_string().contains("do not fill"), "{err}");
    let t = Tokens { shape: [1, 1, 1, 2], codes: vec![3, 99] };
    assert!(tokens::check_codes(&t, 64).unwrap_err().to_string().contains("token 99 (position"));
}

fn npy_bytes(header_dict: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header_dict.to_string();
    while !(10 + h.len() + 1).is_multiple_of(64) {
        h.push(' ');
    }
    h.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((h.len() as u16).to_le_bytes());
    out.extend(h.as_bytes());
    out.extend(data);
    out
}

#[test]
fn bad_video_npy() {
    let f32_video = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2, 3), }", &[0; 48]);
    assert!(read_npy(&f32_video[..]).unwrap_err().to_string().contains("uint8"));
    let gray = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (1, 2, 2), }", &[0; 4]);
    assert!(read_npy(&gray[..]).unwrap_err().to_string().contains("T×H×W×3"));
    let short = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 4, 4, 3), }", &[0; 50]);
    assert!(read_npy(&short[..]).unwrap_err().to_string().contains("truncated"));
    let huge = npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (100000, 4000, 4000, 3), }", &[]);
    assert!(read_npy(&huge[..]).unwrap_err().to_string().contains("GiB"));
    assert!(read_npy(&b"PK\x03\x04 not npy"[..]).unwrap_err().to_string().contains("not a readable .npy"));
}

#[test]
fn bad_token_npy() {
    let floats = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }", &[0; 16]);
    assert!(tokens::npy::read(&floats[..]).unwrap_err().to_string().contains("integer"));
    let flat = npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (4,), }", &[0; 16]);
    assert!(tokens::npy::read(&flat[..]).unwrap_err().to_string().contains("T'×H'×W'"));
    let negative = npy_bytes("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 1, 1), }", &(-5i32).to_le_bytes());
    let msg = tokens::npy::read(&negative[..]).unwrap_err().to_string();
    assert!(msg.contains("negative"), "{msg}");
}

#[test]
fn bad_y4m() {
    assert!(read_y4m(&b"RIFF...."[..]).unwrap_err().to_string().contains("YUV4MPEG2"));
    // a header field starting with a multi-byte character (this panicked, slicing inside it)
    let e = read_y4m(&b"YUV4MPEG2 W8 H8 \xc2\xa9\n"[..]).unwrap_err().to_string();
    assert!(e.contains("y4m file has no frames"), "{e}");
    let e = read_y4m("YUV4MPEG2 W8 H8 ©\nFRAME\n".as_bytes()).unwrap_err().to_string();
    assert!(e.contains("truncated y4m: frame 0 is incomplete"), "{e}");
    let truncated = b"YUV4MPEG2 W4 H4 F30:1 C420jpeg\nFRAME\n0123456789";
    assert!(read_y4m(&truncated[..]).unwrap_err().to_string().contains("truncated"));
    let deep = b"YUV4MPEG2 W4 H4 F30:1 C420p10\nFRAME\n";
    assert!(read_y4m(&deep[..]).unwrap_err().to_string().contains("C420p10 is not supported"));
    let no_size = b"YUV4MPEG2 F30:1\n";
    assert!(read_y4m(&no_size[..]).unwrap_err().to_string().contains("out of range"));
    let empty = b"YUV4MPEG2 W4 H4\n";
    assert!(read_y4m(&empty[..]).unwrap_err().to_string().contains("no frames"));
}

#[test]
fn config_round_trips_through_metadata() {
    let c = VqVaeConfig { downsample: [2, 4, 4], ..VqVaeConfig::default() };
    assert_eq!(VqVaeConfig::from_metadata(&c.to_metadata()).unwrap(), c);
    assert_eq!(c.parameter_count(), 21_141_619, "VideoGPT's VQ-VAE has 21,141,619 parameters (spec §1.9)");
    assert_eq!(c.state_dict_shapes().len(), 283, "VideoGPT's VQ-VAE state_dict has 283 entries");
    // and the key list equals the reference's, in order
    let keys = std::fs::read_to_string(fixture("../../train/videogpt-vqvae-keys.txt")).unwrap();
    let want: Vec<&str> = keys.lines().map(|l| l.split_whitespace().next().unwrap()).collect();
    let got: Vec<String> = VqVaeConfig::default().state_dict_shapes().into_iter().map(|(k, _)| k).collect();
    assert_eq!(got, want);
    let _ = Cpu.upload(&[1.0]).unwrap();
}
