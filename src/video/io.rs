//! Reading and writing clips: `.npy` (uint8 T×H×W×3, exact), `.y4m` (YUV4MPEG2, 8-bit), and any
//! other container through an installed `ffmpeg`.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use npyz::WriterBuilder;

use super::Video;
use crate::{bail, Error, Result};

/// Decoded clips larger than this are refused rather than exhausting memory.
pub const MAX_DECODED_BYTES: usize = 4 << 30;

fn check_size(frames: usize, h: usize, w: usize, what: &str) -> Result<()> {
    match frames.checked_mul(h).and_then(|v| v.checked_mul(w)).and_then(|v| v.checked_mul(3)) {
        Some(n) if n <= MAX_DECODED_BYTES => Ok(()),
        _ => bail!(Input, "{what}: {frames} frames of {w}×{h} decode to more than {} GiB; cut the clip first", MAX_DECODED_BYTES >> 30),
    }
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

pub fn read_video(path: &Path) -> Result<Video> {
    let open = || std::fs::File::open(path).map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())));
    match extension(path).as_str() {
        "npy" => read_npy(BufReader::new(open()?)).map_err(|e| with_path(e, path)),
        "y4m" => read_y4m(BufReader::new(open()?)).map_err(|e| with_path(e, path)),
        _ => {
            open()?; // a missing file is reported as such, not as an ffmpeg failure
            read_ffmpeg(path)
        }
    }
}

/// Frames `start..start + count` of a video file (fewer at its end): for a container ffmpeg
/// decodes only up to the last of them, so a window of a long film costs that window, not the film.
pub fn read_video_frames(path: &Path, start: usize, count: usize) -> Result<Video> {
    let clip = match extension(path).as_str() {
        "npy" | "y4m" => read_video(path)?,
        _ => {
            std::fs::File::open(path).map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))?;
            read_ffmpeg_limited(path, Some(start.saturating_add(count)))?
        }
    };
    if start >= clip.frames {
        bail!(Input, "{}: starts at frame {start}, but the clip has {} frames", path.display(), clip.frames);
    }
    Ok(clip.slice(start, count.min(clip.frames - start)))
}

pub fn write_video(path: &Path, video: &Video) -> Result<()> {
    let create = || std::fs::File::create(path).map_err(|e| Error::Io(format!("cannot create {}: {e}", path.display())));
    match extension(path).as_str() {
        "npy" => write_npy(&mut std::io::BufWriter::new(create()?), video),
        "y4m" => write_y4m(&mut std::io::BufWriter::new(create()?), video),
        _ => write_ffmpeg(path, video),
    }
}

fn with_path(e: Error, path: &Path) -> Error {
    match e {
        Error::Input(m) => Error::Input(format!("{}: {m}", path.display())),
        other => other,
    }
}

// --- .npy ------------------------------------------------------------------------------------

pub fn read_npy<R: Read>(r: R) -> Result<Video> {
    let npy = npyz::NpyFile::new(r).map_err(|e| Error::Input(format!("not a readable .npy file ({e})")))?;
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let [t, h, w, 3] = shape[..] else {
        bail!(Input, "a video .npy must be uint8 T×H×W×3 RGB, got shape {shape:?}");
    };
    if npy.dtype() != npyz::DType::Plain("|u1".parse().unwrap()) {
        bail!(Input, "a video .npy must be uint8 T×H×W×3 RGB, got dtype {}", npy.dtype().descr());
    }
    if npy.order() != npyz::Order::C {
        bail!(Input, "a video .npy must be C-ordered (np.ascontiguousarray)");
    }
    check_size(t, h, w, "video")?;
    let rgb: Vec<u8> = npy.into_vec().map_err(|e| Error::Input(format!("truncated or corrupt .npy data ({e})")))?;
    Video::new(t, h, w, rgb)
}

pub fn write_npy<W: Write>(out: &mut W, video: &Video) -> Result<()> {
    let shape = [video.frames as u64, video.height as u64, video.width as u64, 3];
    let mut writer = npyz::WriteOptions::new().default_dtype().shape(&shape).writer(out).begin_nd()?;
    writer.extend(video.rgb.iter().copied())?;
    writer.finish()?;
    Ok(())
}

// --- .y4m --------------------------------------------------------------------------------------

/// BT.601 limited-range YUV → RGB, as ffmpeg converts untagged 8-bit YUV.
fn yuv_to_rgb(y: u8, u: u8, v: u8) -> [u8; 3] {
    let (y, u, v) = (1.164_383_6 * (y as f32 - 16.0), u as f32 - 128.0, v as f32 - 128.0);
    let clamp = |x: f32| x.round().clamp(0.0, 255.0) as u8;
    [clamp(y + 1.596_026_8 * v), clamp(y - 0.391_762_3 * u - 0.812_968 * v), clamp(y + 2.017_232_2 * u)]
}

fn rgb_to_yuv(p: [f32; 3]) -> [f32; 3] {
    let [r, g, b] = p;
    [
        16.0 + 0.256_788_2 * r + 0.504_129_3 * g + 0.097_905_7 * b,
        128.0 - 0.148_222_9 * r - 0.290_992_8 * g + 0.439_215_7 * b,
        128.0 + 0.439_215_7 * r - 0.367_788_7 * g - 0.071_427 * b,
    ]
}

/// Chroma subsampling of a y4m colourspace: (horizontal, vertical) divisor, or None for mono.
fn chroma_layout(colorspace: &str) -> Result<Option<(usize, usize)>> {
    Ok(match colorspace {
        "420" | "420jpeg" | "420paldv" | "420mpeg2" => Some((2, 2)),
        "422" => Some((2, 1)),
        "444" => Some((1, 1)),
        "mono" => None,
        other => bail!(Input, "y4m colourspace C{other} is not supported (8-bit 420, 422, 444 or mono only)"),
    })
}

/// A y4m stream read frame by frame (a pipe from ffmpeg, or a file): the header first, then each
/// frame as RGB bytes when it arrives.
pub struct Y4mReader<R: BufRead> {
    r: R,
    pub width: usize,
    pub height: usize,
    pub fps: Option<f64>,
    chroma: Option<(usize, usize)>,
    buf: Vec<u8>,
    pub frames: usize,
}

impl<R: BufRead> Y4mReader<R> {
    pub fn open(mut r: R) -> Result<Self> {
        let mut header = String::new();
        (&mut r).take(4096).read_line(&mut header)?;
        let mut fields = header.trim_end().split(' ');
        if fields.next() != Some("YUV4MPEG2") {
            bail!(Input, "not a YUV4MPEG2 (.y4m) file");
        }
        let (mut w, mut h, mut fps, mut colorspace) = (0usize, 0usize, None, "420jpeg".to_string());
        for f in fields {
            // the tag is one character, which need not be ASCII in a damaged header
            let tag_len = f.chars().next().map_or(0, char::len_utf8);
            let (tag, val) = f.split_at(tag_len);
            match tag {
                "W" => w = val.parse().map_err(|_| Error::Input(format!("bad y4m width {val:?}")))?,
                "H" => h = val.parse().map_err(|_| Error::Input(format!("bad y4m height {val:?}")))?,
                "F" => {
                    let (n, d) = val.split_once(':').unwrap_or((val, "1"));
                    if let (Ok(n), Ok(d)) = (n.parse::<f64>(), d.parse::<f64>()) {
                        fps = (d > 0.0).then(|| n / d);
                    }
                }
                "C" => colorspace = val.to_string(),
                _ => {}
            }
        }
        if w == 0 || h == 0 || w > 1 << 14 || h > 1 << 14 {
            bail!(Input, "y4m frame size {w}×{h} is missing or out of range");
        }
        let chroma = chroma_layout(&colorspace)?;
        let (cw, ch) = chroma.map_or((0, 0), |(sx, sy)| (w.div_ceil(sx), h.div_ceil(sy)));
        Ok(Y4mReader { r, width: w, height: h, fps, chroma, buf: vec![0u8; w * h + 2 * cw * ch], frames: 0 })
    }

    /// The next frame as H×W×3 RGB bytes, or None at the end of the stream.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>> {
        let (w, h) = (self.width, self.height);
        let mut line = String::new();
        if (&mut self.r).take(4096).read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if !line.starts_with("FRAME") {
            bail!(Input, "corrupt y4m: expected FRAME after {} frames", self.frames);
        }
        self.r.read_exact(&mut self.buf).map_err(|_| Error::Input(format!("truncated y4m: frame {} is incomplete", self.frames)))?;
        self.frames += 1;
        let cw = self.chroma.map_or(0, |(sx, _)| w.div_ceil(sx));
        let (luma, rest) = self.buf.split_at(w * h);
        let (u, v) = rest.split_at(rest.len() / 2);
        let mut rgb = Vec::with_capacity(w * h * 3);
        for y in 0..h {
            for x in 0..w {
                let (uu, vv) = match self.chroma {
                    Some((sx, sy)) => (u[(y / sy) * cw + x / sx], v[(y / sy) * cw + x / sx]),
                    None => (128, 128),
                };
                rgb.extend_from_slice(&yuv_to_rgb(luma[y * w + x], uu, vv));
            }
        }
        Ok(Some(rgb))
    }
}

pub fn read_y4m<R: BufRead>(r: R) -> Result<Video> {
    let mut y4m = Y4mReader::open(r)?;
    let mut rgb = Vec::new();
    while let Some(frame) = y4m.next_frame()? {
        check_size(y4m.frames, y4m.height, y4m.width, "y4m")?;
        rgb.extend_from_slice(&frame);
    }
    if y4m.frames == 0 {
        bail!(Input, "y4m file has no frames");
    }
    let mut v = Video::new(y4m.frames, y4m.height, y4m.width, rgb)?;
    v.fps = y4m.fps;
    Ok(v)
}

/// Writes 4:2:0 (`C420jpeg`), which every y4m reader (ffmpeg, Chromium's fake camera) accepts.
pub fn write_y4m<W: Write>(out: &mut W, v: &Video) -> Result<()> {
    write_y4m_header(out, v.width, v.height, v.fps)?;
    write_y4m_frames(out, v)
}

/// The stream header of [`write_y4m`], for writers that send frames as they come.
pub fn write_y4m_header<W: Write>(out: &mut W, width: usize, height: usize, fps: Option<f64>) -> Result<()> {
    let (num, den) = fps_ratio(fps.unwrap_or(30.0));
    writeln!(out, "YUV4MPEG2 W{width} H{height} F{num}:{den} Ip A1:1 C420jpeg")?;
    Ok(())
}

/// The frames of [`write_y4m`], without the header.
pub fn write_y4m_frames<W: Write>(out: &mut W, v: &Video) -> Result<()> {
    let (w, h) = (v.width, v.height);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    for f in 0..v.frames {
        let px = |y: usize, x: usize| {
            let i = ((f * h + y) * w + x) * 3;
            rgb_to_yuv([v.rgb[i] as f32, v.rgb[i + 1] as f32, v.rgb[i + 2] as f32])
        };
        let mut planes = vec![0u8; w * h + 2 * cw * ch];
        for y in 0..h {
            for x in 0..w {
                planes[y * w + x] = px(y, x)[0].round().clamp(0.0, 255.0) as u8;
            }
        }
        for cy in 0..ch {
            for cx in 0..cw {
                let (mut su, mut sv, mut n) = (0.0, 0.0, 0.0);
                for y in 2 * cy..(2 * cy + 2).min(h) {
                    for x in 2 * cx..(2 * cx + 2).min(w) {
                        let p = px(y, x);
                        (su, sv, n) = (su + p[1], sv + p[2], n + 1.0);
                    }
                }
                planes[w * h + cy * cw + cx] = (su / n).round().clamp(0.0, 255.0) as u8;
                planes[w * h + cw * ch + cy * cw + cx] = (sv / n).round().clamp(0.0, 255.0) as u8;
            }
        }
        out.write_all(b"FRAME\n")?;
        out.write_all(&planes)?;
    }
    Ok(())
}

fn fps_ratio(fps: f64) -> (u64, u64) {
    let fps = if fps.is_finite() && fps > 0.0 { fps } else { 30.0 };
    if (fps - fps.round()).abs() < 1e-6 {
        (fps.round() as u64, 1)
    } else {
        ((fps * 1001.0).round() as u64, 1001)
    }
}

// --- ffmpeg ------------------------------------------------------------------------------------

fn tool(name: &str) -> Result<Command> {
    match Command::new(name).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(_) => Ok(Command::new(name)),
        Err(_) => bail!(
            Io,
            "reading or writing this container needs `{name}`, which is not installed (Debian: apt-get install ffmpeg); .npy and .y4m work without it"
        ),
    }
}

fn read_ffmpeg(path: &Path) -> Result<Video> {
    read_ffmpeg_limited(path, None)
}

/// Decode with ffmpeg, at most `frames` frames when given.
fn read_ffmpeg_limited(path: &Path, frames: Option<usize>) -> Result<Video> {
    let probe = tool("ffprobe")?
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height,avg_frame_rate", "-of", "csv=p=0"])
        .arg(path)
        .output()?;
    let text = String::from_utf8_lossy(&probe.stdout);
    let parts: Vec<&str> = text.trim().split(',').collect();
    let (Some(w), Some(h)) = (parts.first().and_then(|v| v.parse::<usize>().ok()), parts.get(1).and_then(|v| v.parse::<usize>().ok())) else {
        let why = String::from_utf8_lossy(&probe.stderr);
        let why = why.trim().lines().last().unwrap_or("");
        bail!(Input, "{}: no decodable video stream{}", path.display(), if why.is_empty() { String::new() } else { format!(" (ffprobe: {why})") });
    };
    let fps = parts.get(2).and_then(|r| {
        let (n, d) = r.split_once('/')?;
        let (n, d) = (n.parse::<f64>().ok()?, d.parse::<f64>().ok()?);
        (d > 0.0 && n > 0.0).then(|| n / d)
    });
    let mut child = tool("ffmpeg")?
        .args(["-v", "error", "-nostdin", "-i"])
        .arg(path)
        .args(["-map", "0:v:0", "-fps_mode", "passthrough"])
        .args(frames.map(|n| ["-frames:v".to_owned(), n.to_string()]).into_iter().flatten())
        .args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let frame = w * h * 3;
    let mut rgb = Vec::new();
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut chunk = vec![0u8; frame.max(1)];
    loop {
        let n = stdout.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        rgb.extend_from_slice(&chunk[..n]);
        if rgb.len() > MAX_DECODED_BYTES {
            let _ = child.kill();
            check_size(rgb.len() / frame + 1, h, w, &path.display().to_string())?;
        }
    }
    let out = child.wait_with_output()?;
    if !out.status.success() || rgb.is_empty() {
        bail!(Input, "{}: ffmpeg could not decode it ({})", path.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    let frames = rgb.len() / frame;
    rgb.truncate(frames * frame);
    let mut v = Video::new(frames, h, w, rgb)?;
    v.fps = fps;
    Ok(v)
}

fn write_ffmpeg(path: &Path, v: &Video) -> Result<()> {
    let mut child = tool("ffmpeg")?
        .args(["-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24"])
        .args(["-s", &format!("{}x{}", v.width, v.height), "-r", &format!("{}", v.fps.unwrap_or(30.0))])
        .args(["-i", "pipe:0", "-pix_fmt", "yuv420p"])
        .arg(path)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let written = child.stdin.take().expect("piped stdin").write_all(&v.rgb);
    let out = child.wait_with_output()?;
    if !out.status.success() || written.is_err() {
        bail!(Io, "ffmpeg could not write {} ({})", path.display(), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(())
}
