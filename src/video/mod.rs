//! Video clips as uint8 RGB frames, and `preprocess` (spec §1.1): resize of the shorter side
//! (antialiased by default, or VideoGPT's bilinear exactly), centre crop, [-0.5, 0.5] range; and
//! the output side's clamp + truncation.

#[cfg(not(target_arch = "wasm32"))]
pub mod io;

use crate::tensor::{Dims, Volume};
use crate::{bail, Result};

/// T×H×W×3 uint8 RGB frames, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Video {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
    pub rgb: Vec<u8>,
    /// Frames per second where the source says so.
    pub fps: Option<f64>,
}

impl Video {
    pub fn new(frames: usize, height: usize, width: usize, rgb: Vec<u8>) -> Result<Self> {
        if rgb.len() != frames * height * width * 3 {
            bail!(Input, "{} bytes are not {frames}×{height}×{width}×3 RGB", rgb.len());
        }
        Ok(Video { frames, height, width, rgb, fps: None })
    }

    pub fn frame_len(&self) -> usize {
        self.height * self.width * 3
    }

    /// Frames `start..start + n` as a new clip.
    pub fn slice(&self, start: usize, n: usize) -> Video {
        let f = self.frame_len();
        Video { frames: n, rgb: self.rgb[start * f..(start + n) * f].to_vec(), ..*self }
    }

    /// Concatenate clips of the same frame size.
    pub fn concat(parts: &[Video]) -> Result<Video> {
        let Some(first) = parts.first() else { bail!(Input, "no clips to join") };
        let mut rgb = Vec::new();
        for p in parts {
            if (p.height, p.width) != (first.height, first.width) {
                bail!(Input, "clips of different sizes cannot be joined");
            }
            rgb.extend_from_slice(&p.rgb);
        }
        Ok(Video { frames: parts.iter().map(|p| p.frames).sum(), rgb, ..*first })
    }
}

/// How frames are resized to the model's resolution.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(not(target_arch = "wasm32"), derive(clap::ValueEnum))]
#[cfg_attr(target_arch = "wasm32", derive(serde::Deserialize), serde(rename_all = "lowercase"))]
pub enum Resize {
    /// Bilinear with antialiasing (torch `antialias=True`, PIL's bilinear reduce): when shrinking,
    /// the triangle filter widens to cover every source pixel, so nothing aliases. Our models are
    /// trained on frames resized this way (spec §1.1), and it is the engine's default.
    #[default]
    Antialias,
    /// VideoGPT's own `preprocess`: bilinear without antialiasing, exactly (spec §1.1).
    #[cfg_attr(not(target_arch = "wasm32"), value(name = "videogpt"))]
    VideoGpt,
}

impl std::str::FromStr for Resize {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "antialias" => Ok(Resize::Antialias),
            "videogpt" => Ok(Resize::VideoGpt),
            other => bail!(Input, "resize must be 'antialias' or 'videogpt', not {other:?}"),
        }
    }
}

/// The source pixels one output pixel reads along one axis, and their weights, in summation order.
pub type Taps = Vec<(usize, f32)>;

/// Bilinear taps along one axis, PyTorch's `align_corners=False` without antialiasing, every
/// coordinate in f32 (spec §1.1). torch's CPU kernel computes `(dst + 0.5)·scale − 0.5` as one
/// fused multiply-add; rounding the product first moves some weights by up to 4e-6.
fn bilinear_taps(input: usize, output: usize) -> Vec<Taps> {
    let scale = input as f32 / output as f32;
    (0..output)
        .map(|dst| {
            let src = (dst as f32 + 0.5).mul_add(scale, -0.5).max(0.0);
            let i0 = (src.floor() as usize).min(input - 1);
            let i1 = (i0 + 1).min(input - 1);
            let l1 = (src - i0 as f32).clamp(0.0, 1.0);
            vec![(i0, 1.0 - l1), (i1, l1)]
        })
        .collect()
}

/// Antialiased bilinear taps along one axis, as torch's `_upsample_bilinear2d_aa` (and PIL)
/// compute them: a triangle filter stretched by the downscale factor, normalised to sum 1.
fn antialias_taps(input: usize, output: usize) -> Vec<Taps> {
    let scale = input as f32 / output as f32;
    let support = scale.max(1.0);
    let inv = 1.0 / support;
    (0..output)
        .map(|dst| {
            let center = scale * (dst as f32 + 0.5);
            let lo = ((center - support + 0.5).floor().max(0.0) as usize).min(input - 1);
            let hi = ((center + support + 0.5).floor() as usize).clamp(lo + 1, input);
            let mut taps: Taps = (lo..hi).map(|j| (j, (1.0 - ((j as f32 - center + 0.5) * inv).abs()).max(0.0))).collect();
            let total: f32 = taps.iter().map(|t| t.1).sum();
            if total > 0.0 {
                taps.iter_mut().for_each(|t| t.1 /= total);
            }
            taps.retain(|t| t.1 != 0.0);
            taps
        })
        .collect()
}

/// Where each output pixel of `preprocess` samples its source: the taps of the rows and columns
/// that survive the centre crop. The CPU path and the GPU kernel (shaders/preprocess.wgsl) both
/// evaluate this plan in the same order, so they compute the same sums.
pub struct ResizePlan {
    pub frames: usize,
    pub resolution: usize,
    /// Taps per output row.
    pub rows: Vec<Taps>,
    /// Taps per output column.
    pub cols: Vec<Taps>,
}

impl ResizePlan {
    /// VideoGPT's target size: shorter side = resolution, the other ceil(side·scale) with the
    /// scale in f64 as in Python, then a centre crop to resolution².
    pub fn new(video: &Video, resolution: usize, sequence_length: Option<usize>, resize: Resize) -> Result<Self> {
        Self::for_size([video.frames, video.height, video.width], resolution, sequence_length, resize)
    }

    /// The plan for a clip of `[frames, height, width]` (frames that are not in host memory).
    pub fn for_size([frames, h, w]: [usize; 3], resolution: usize, sequence_length: Option<usize>, resize: Resize) -> Result<Self> {
        if frames == 0 || h == 0 || w == 0 {
            bail!(Input, "empty video ({frames}×{h}×{w})");
        }
        if resolution == 0 {
            bail!(Input, "resolution must be positive");
        }
        let frames = sequence_length.map_or(frames, |s| s.min(frames));
        let scale = resolution as f64 / h.min(w) as f64;
        let (rh, rw) = if h < w { (resolution, (w as f64 * scale).ceil() as usize) } else { ((h as f64 * scale).ceil() as usize, resolution) };
        let (h0, w0) = ((rh - resolution) / 2, (rw - resolution) / 2);
        let taps = match resize {
            Resize::Antialias => antialias_taps,
            Resize::VideoGpt => bilinear_taps,
        };
        Ok(ResizePlan { frames, resolution, rows: taps(h, rh)[h0..h0 + resolution].to_vec(), cols: taps(w, rw)[w0..w0 + resolution].to_vec() })
    }

    /// The most taps any output row or column reads.
    pub fn max_taps(&self) -> usize {
        self.rows.iter().chain(&self.cols).map(Vec::len).max().unwrap_or(0)
    }
}

/// `preprocess(video, resolution, sequence_length)`: first `sequence_length` frames, shorter
/// side resized to `resolution` (with `resize`; `Resize::VideoGpt` is VideoGPT's exactly),
/// centre crop, to a 3×T×res×res volume in [-0.5, 0.5].
pub fn preprocess(video: &Video, resolution: usize, sequence_length: Option<usize>, resize: Resize) -> Result<Volume> {
    let plan = ResizePlan::new(video, resolution, sequence_length, resize)?;
    let (t, w) = (plan.frames, video.width);
    let n = resolution * resolution;
    let mut data = vec![0.0f32; 3 * t * n];
    // Σ_y wy·(Σ_x wx·p): each source row's horizontal sums are computed once and reused by every
    // output row that reads it; the sums are the same the GPU kernel forms pixel by pixel.
    let mut row_sums: Vec<Option<Vec<[f32; 3]>>> = vec![None; video.height];
    for f in 0..t {
        row_sums.iter_mut().for_each(|r| *r = None);
        let frame = &video.rgb[f * video.frame_len()..(f + 1) * video.frame_len()];
        for (oy, ytaps) in plan.rows.iter().enumerate() {
            for &(y, _) in ytaps {
                row_sums[y].get_or_insert_with(|| {
                    let px = |x: usize, c: usize| frame[(y * w + x) * 3 + c] as f32 / 255.0;
                    plan.cols.iter().map(|xt| std::array::from_fn(|c| xt.iter().fold(0.0, |acc, &(x, wx)| acc + wx * px(x, c)))).collect()
                });
            }
            for ox in 0..resolution {
                for c in 0..3 {
                    let v = ytaps.iter().fold(0.0, |acc, &(y, wy)| acc + wy * row_sums[y].as_ref().expect("filled above")[ox][c]);
                    data[(c * t + f) * n + oy * resolution + ox] = v - 0.5;
                }
            }
        }
    }
    Ok(Volume { dims: Dims::new(3, t, resolution, resolution), data })
}

/// A 3×T×H×W volume in model range back to frames: `clamp(x, -0.5, 0.5) + 0.5`, `·255`, truncated
/// to uint8, as VideoGPT's callers do.
pub fn to_video(x: &Volume) -> Result<Video> {
    quantise(x, |v| ((v.clamp(-0.5, 0.5) + 0.5) * 255.0) as u8)
}

/// The model-sized input of a clip (`preprocess`'s output) as uint8 frames. These values are the
/// clip's own bytes resampled, so they are rounded to the nearest rather than truncated as a
/// model's output is: at the model's size a clip comes back byte for byte (truncation turned
/// some bytes b into b − 1, since (b/255 − 0.5 + 0.5)·255 can land a hair under b in f32).
/// `shaders/lib/bytes.wgsl`'s `input_byte` is the same formula.
pub fn input_to_video(x: &Volume) -> Result<Video> {
    quantise(x, |v| ((v.clamp(-0.5, 0.5) + 0.5) * 255.0 + 0.5).floor() as u8)
}

/// A 3×T×H×W volume as T×H×W×3 bytes, each value through `byte` (NaN becomes 0: `as u8` saturates).
fn quantise(x: &Volume, byte: impl Fn(f32) -> u8) -> Result<Video> {
    let d = x.dims;
    if d.c != 3 {
        bail!(Input, "a video volume has 3 channels, got {}", d.c);
    }
    let n = d.positions();
    let mut rgb = vec![0u8; 3 * n];
    for c in 0..3 {
        for (p, v) in x.data[c * n..(c + 1) * n].iter().enumerate() {
            rgb[p * 3 + c] = byte(*v);
        }
    }
    Video::new(d.t, d.h, d.w, rgb)
}

/// Frame ranges of the consecutive `sequence_length` windows a long clip is cut into. A clip
/// shorter than one window is used whole, trimmed to a multiple of `t_factor`; frames after the
/// last full window of a longer clip are left out (the returned count says how many).
#[allow(clippy::single_range_in_vec_init)] // one window is a common, valid answer
pub fn windows(frames: usize, sequence_length: usize, t_factor: usize) -> (Vec<std::ops::Range<usize>>, usize) {
    if frames < sequence_length {
        let usable = frames / t_factor * t_factor;
        return (if usable > 0 { vec![0..usable] } else { vec![] }, frames - usable);
    }
    let n = frames / sequence_length;
    ((0..n).map(|i| i * sequence_length..(i + 1) * sequence_length).collect(), frames - n * sequence_length)
}
