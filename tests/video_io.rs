//! preprocess against torch's F.interpolate goldens, and the clip formats.

mod common;
use common::*;
use videogpt::video::io::{read_video, read_y4m, write_npy, write_y4m};
use videogpt::video::{preprocess, to_video, windows, Resize, Video};

fn carphone() -> Video {
    read_video(&fixture("carphone_8f.npy")).unwrap()
}

/// Both resize modes against torch's `F.interpolate` (VideoGPT's: `antialias=False`; the
/// default: `antialias=True`), downscaling 144×176 and upscaling a 20×30 crop.
#[test]
fn preprocess_matches_torch() {
    let plain = Golden::open("preprocess.safetensors");
    let (s, small) = plain.u8("small");
    let small = Video::new(s[0], s[1], s[2], small).unwrap();
    let clip = carphone();
    assert_eq!((clip.frames, clip.height, clip.width), (8, 144, 176));
    for (resize, g, small_key) in
        [(Resize::VideoGpt, plain, "small_res36"), (Resize::Antialias, Golden::open("preprocess_antialias.safetensors"), "small_res36")]
    {
        for (key, input, res, seq) in [("res32", &clip, 32, None), ("res48_seq4", &clip, 48, Some(4)), (small_key, &small, 36, None)] {
            let (shape, want) = g.f32(key);
            let got = preprocess(input, res, seq, resize).unwrap();
            assert_eq!([got.dims.c, got.dims.t, got.dims.h, got.dims.w][..], shape[..], "{resize:?} {key}");
            // measured: ≤ 6e-8 for both modes (torch sums in the same order)
            let err = max_abs_diff(&got.data, &want);
            assert!(err <= 1e-6, "{resize:?} {key}: max |err| {err:e}");
        }
    }
}

/// The two modes differ where they should: shrinking 4.5× without a filter aliases, so the
/// antialiased result is smoother (less energy between neighbouring pixels), while upscaling is
/// the same bilinear interpolation either way.
#[test]
fn antialiasing_filters_when_shrinking() {
    let clip = carphone();
    let (plain, aa) = (preprocess(&clip, 32, None, Resize::VideoGpt).unwrap(), preprocess(&clip, 32, None, Resize::Antialias).unwrap());
    let roughness = |v: &[f32]| v.windows(2).map(|p| (p[1] - p[0]).abs() as f64).sum::<f64>();
    assert!(roughness(&aa.data) < 0.8 * roughness(&plain.data), "antialiased {} vs plain {}", roughness(&aa.data), roughness(&plain.data));
    let g = Golden::open("preprocess.safetensors");
    let (s, small) = g.u8("small");
    let small = Video::new(s[0], s[1], s[2], small).unwrap();
    let (a, b) = (preprocess(&small, 36, None, Resize::VideoGpt).unwrap(), preprocess(&small, 36, None, Resize::Antialias).unwrap());
    assert!(max_abs_diff(&a.data[..], &b.data[..]) < 0.02, "upscaling differs by {}", max_abs_diff(&a.data, &b.data));
}

#[test]
fn model_sized_preprocess_is_identity_and_to_video_inverts_it() {
    let clip = carphone();
    let square = Video::new(8, 32, 32, (0..8 * 32 * 32 * 3).map(|i| clip.rgb[i * 7 % clip.rgb.len()]).collect()).unwrap();
    let x = preprocess(&square, 32, None, Resize::default()).unwrap();
    // (v/255 − 0.5 + 0.5)·255 can land a hair under v; VideoGPT truncates, so allow that one level
    let back = to_video(&x).unwrap();
    let worst = back.rgb.iter().zip(&square.rgb).map(|(a, b)| (*a as i16 - *b as i16).abs()).max().unwrap();
    assert!(worst <= 1);
    assert_eq!(x.data[0], square.rgb[0] as f32 / 255.0 - 0.5);
}

#[test]
#[allow(clippy::single_range_in_vec_init)]
fn windows_cover_long_clips() {
    assert_eq!(windows(40, 16, 4), (vec![0..16, 16..32], 8));
    assert_eq!(windows(16, 16, 4), (vec![0..16], 0));
    assert_eq!(windows(10, 16, 4), (vec![0..8], 2));
    assert_eq!(windows(3, 16, 4), (vec![], 3));
}

#[test]
fn npy_round_trip_is_exact() {
    let clip = carphone();
    let mut buf = Vec::new();
    write_npy(&mut buf, &clip).unwrap();
    assert_eq!(videogpt::video::io::read_npy(&buf[..]).unwrap(), clip);
}

#[test]
fn y4m_round_trip_is_close() {
    let clip = carphone().slice(0, 3);
    let mut buf = Vec::new();
    write_y4m(&mut buf, &clip).unwrap();
    let back = read_y4m(&buf[..]).unwrap();
    assert_eq!((back.frames, back.height, back.width), (3, 144, 176));
    assert_eq!(back.fps, Some(30.0));
    // 4:2:0 chroma and 8-bit YUV lose a little: PSNR stays high
    let psnr = videogpt::metrics::psnr(&clip, &back).unwrap();
    assert!(psnr > 35.0, "y4m round trip PSNR {psnr}");
}

#[test]
fn ffmpeg_reads_what_we_write_and_we_read_what_it_writes() {
    let dir = std::env::temp_dir().join(format!("videogpt-io-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clip = carphone();
    let y4m = dir.join("clip.y4m");
    videogpt::video::io::write_video(&y4m, &clip).unwrap();
    // ffmpeg decodes our y4m (through the ffmpeg path, by giving it another name)
    let renamed = dir.join("clip.yuv4mpeg");
    std::fs::copy(&y4m, &renamed).unwrap();
    let via_ffmpeg = read_video(&renamed).unwrap();
    let ours = read_video(&y4m).unwrap();
    assert_eq!((via_ffmpeg.frames, via_ffmpeg.height, via_ffmpeg.width), (8, 144, 176));
    let psnr = videogpt::metrics::psnr(&ours, &via_ffmpeg).unwrap();
    assert!(psnr > 40.0, "our YUV→RGB and ffmpeg's differ: {psnr} dB");
    // an H.264 mp4 written through ffmpeg comes back close to the source
    let mp4 = dir.join("clip.mp4");
    videogpt::video::io::write_video(&mp4, &clip).unwrap();
    let decoded = read_video(&mp4).unwrap();
    assert_eq!(decoded.frames, 8);
    assert!(videogpt::metrics::psnr(&clip, &decoded).unwrap() > 30.0);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn metrics_behave() {
    let a = carphone().slice(0, 2);
    assert!(videogpt::metrics::psnr(&a, &a).unwrap().is_infinite());
    assert!((videogpt::metrics::ssim(&a, &a).unwrap() - 1.0).abs() < 1e-12);
    let mut b = a.clone();
    b.rgb.iter_mut().for_each(|v| *v = v.saturating_add(10));
    let p = videogpt::metrics::psnr(&a, &b).unwrap();
    assert!(p > 27.0 && p < 29.0, "a uniform +10 shift is about 28 dB, got {p}");
    let s = videogpt::metrics::ssim(&a, &b).unwrap();
    assert!(s > 0.9 && s < 1.0, "{s}");
    let e = videogpt::metrics::psnr(&a, &a.slice(0, 1)).unwrap_err().to_string();
    assert!(e.contains("cannot compare a ") && e.contains("with a 1×"), "{e}");
}

/// Our metrics against independent implementations on a real distortion (carphone's first 4
/// frames and the same frames JPEG-compressed at quality 15, `train/make_metric_fixtures.py`):
/// PSNR against ffmpeg's `psnr` filter computed here (RGB input, so ffmpeg's per-frame `psnr_avg`
/// is over the same 3 planes of 8-bit values: the same definition), and SSIM against
/// scikit-image's `structural_similarity` on BT.601 luma in Wang et al.'s convention (the golden
/// values in the fixture).
#[test]
fn metrics_equal_ffmpeg_psnr_and_scikit_image_ssim() {
    let g = Golden::open("metrics_pair.safetensors");
    let (shape, distorted) = g.u8("distorted");
    let a = carphone().slice(0, 4);
    assert_eq!(shape, [4, a.height, a.width, 3]);
    let b = Video::new(4, a.height, a.width, distorted).unwrap();

    let dir = std::env::temp_dir().join(format!("videogpt-metrics-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (ra, rb) = (dir.join("a.rgb"), dir.join("b.rgb"));
    std::fs::write(&ra, &a.rgb).unwrap();
    std::fs::write(&rb, &b.rgb).unwrap();
    let size = format!("{}x{}", a.width, a.height);
    let raw = |p: &std::path::Path| ["-f", "rawvideo", "-pix_fmt", "rgb24", "-s", &size, "-i", p.to_str().unwrap()].map(String::from);
    let out = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-nostdin"])
        .args(raw(&rb))
        .args(raw(&ra))
        .args(["-lavfi", "[0:v][1:v]psnr=stats_file=-", "-f", "null", "-"])
        .output()
        .expect("ffmpeg runs (scripts/test.sh installs it)");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stats = String::from_utf8_lossy(&out.stdout);
    let theirs: Vec<f64> = stats.lines().filter_map(|l| l.split_whitespace().find_map(|f| f.strip_prefix("psnr_avg:"))).map(|v| v.parse().unwrap()).collect();
    std::fs::remove_dir_all(&dir).ok();
    let ours = videogpt::metrics::psnr_per_frame(&a, &b).unwrap();
    assert_eq!(theirs.len(), ours.len(), "ffmpeg said: {stats}");
    for (f, (o, t)) in ours.iter().zip(&theirs).enumerate() {
        // ffmpeg prints 2 decimals; measured |ours − ffmpeg| ≤ 0.005 (its rounding)
        assert!((o - t).abs() <= 0.006, "frame {f}: PSNR {o:.4} here, {t} in ffmpeg");
        assert!(*o > 20.0 && *o < 40.0, "frame {f}: {o} dB is not a JPEG-15 distortion");
    }

    let (_, want) = g.f64("ssim_skimage");
    let ssim = videogpt::metrics::ssim_per_frame(&a, &b).unwrap();
    assert_eq!(ssim.len(), want.len());
    for (f, (o, t)) in ssim.iter().zip(&want).enumerate() {
        // measured: equal to 1e-12 (the same formula in f64)
        assert!((o - t).abs() <= 1e-9, "frame {f}: SSIM {o} here, {t} in scikit-image");
    }
}
