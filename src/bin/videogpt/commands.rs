//! The commands that run models: files in and out around `videogpt::workflow`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use std::rc::Rc;

use videogpt::backend::Backend;
use videogpt::engine::{Device, Engine, InputOptions, ModelFile, Models};
use videogpt::tokens::{self, Tokens};
use videogpt::video::{self, io::read_video, Video};
use videogpt::workflow::{Prior, Reconstruction, Tokenizer};
use videogpt::{bail, metrics, on_engine, Cpu, Error, Result};

use crate::files::{refuse_overwrite, write_clip, write_file, write_tokens};
use crate::Job;

pub enum Action {
    /// `shard`: this run's share of a dataset (`--shard i/n`)
    /// `prior`: code the `.vgt` output under this GPT (version 2)
    Encode {
        shard: Option<crate::dataset::Shard>,
        prior: Option<PathBuf>,
    },
    /// `prior`: the GPT a version 2 `.vgt` input is coded under
    Decode {
        fps: Option<f64>,
        prior: Option<PathBuf>,
    },
    Reconstruct {
        json: bool,
        stream: bool,
    },
}

/// The engine a command runs on (the GPU's name goes to stderr).
pub(crate) fn open_engine(device: Device) -> Result<Engine> {
    let engine = pollster::block_on(Engine::open(device))?;
    if let Some(gpu) = engine.gpu() {
        eprintln!("GPU: {}", gpu.describe());
    }
    Ok(engine)
}

pub fn run_job(j: Job, action: Action) -> Result<()> {
    let dataset = crate::dataset::is_dataset(&j.input);
    if matches!(action, Action::Encode { shard: Some(_), .. }) && !dataset {
        bail!(Input, "--shard splits a dataset: give a folder or a .txt list as --input, not {}", j.input.display());
    }
    if let Action::Encode { prior: Some(_), .. } = action {
        if dataset || !is_vgt(&j.output) {
            bail!(Input, "--prior codes one clip's tokens into a .vgt file: give a video as --input and a .vgt as --output");
        }
    }
    on_engine!(&open_engine(j.device)?, |m| {
        match action {
            Action::Encode { shard, .. } if dataset => crate::dataset::encode_dataset(&m, &j, shard.unwrap_or_default()),
            Action::Encode { ref prior, .. } => encode(&m, &j, prior.as_deref()),
            Action::Decode { fps, ref prior } => decode(&m, &j, fps, prior.as_deref()),
            Action::Reconstruct { stream: true, .. } => reconstruct_stream(&m, &j),
            Action::Reconstruct { json, .. } => reconstruct(&m, &j, json),
        }
    })
}

/// A model file's safetensors bytes: a `.safetensors` file as it is, a PyTorch/Lightning
/// checkpoint (`.ckpt`, `.pt`) converted in memory without running its pickle.
pub fn read_model(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| Error::Io(format!("cannot read model {}: {e}", path.display())))?;
    if videogpt::checkpoint::is_checkpoint(&bytes) {
        return videogpt::checkpoint::convert(&bytes, false).map(|c| c.safetensors).map_err(|e| in_file(e, path));
    }
    Ok(bytes)
}

pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))
}

/// Name the file an input error is about.
pub(crate) fn in_input(e: Error, path: &Path) -> Error {
    match e {
        Error::Input(m) => Error::Input(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Name the file a weights error is about.
pub fn in_file(e: Error, path: &Path) -> Error {
    match e {
        Error::Weights(m) => Error::Weights(format!("{}: {m}", path.display())),
        other => other,
    }
}

/// Load `path` as the engine's tokenizer, brought clips as `input` says.
pub(crate) fn load_tokenizer<B: Backend>(m: &Models<B>, path: &Path, input: InputOptions) -> Result<Rc<Tokenizer<B>>> {
    let bytes = read_model(path)?;
    m.load_tokenizer(ModelFile::new(&path.display().to_string(), &bytes), input)
}

/// Say how many trailing frames fill no model window (and are left out).
pub(crate) fn note_dropped<B: Backend>(t: &Tokenizer<B>, clip: &Video) -> Result<()> {
    let (_, dropped) = t.windows(clip.frames)?;
    if dropped > 0 {
        eprintln!("note: {dropped} trailing frames do not fill a {}-frame window and are left out", t.config().sequence_length);
    }
    Ok(())
}

/// What `encode` and `reconstruct` start from: the output checked against the inputs, the
/// tokenizer and the clip.
fn open_clip_job<B: Backend>(m: &Models<B>, j: &Job) -> Result<(Rc<Tokenizer<B>>, Video)> {
    refuse_overwrite(&j.output, &[&j.input, &j.model])?;
    let t = load_tokenizer(m, &j.model, j.input_options)?;
    let clip = read_video(&j.input)?;
    note_dropped(&t, &clip)?;
    Ok((t, clip))
}

fn progress(label: &str, i: usize, n: usize, started: Instant) {
    eprintln!("{label} window {}/{n} ({:.1}s)", i + 1, started.elapsed().as_secs_f64());
}

pub(crate) fn is_vgt(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| e.eq_ignore_ascii_case("vgt"))
}

pub(crate) fn require_extension(path: &Path, ext: &str, what: &str) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()).map(|e| e.eq_ignore_ascii_case(ext)) != Some(true) {
        bail!(Input, "{what} are written as .{ext}; got {}", path.display());
    }
    Ok(())
}

/// A prior for the token files of `j.model` (`--prior`), its file named in its errors.
fn load_coding_prior<B: Backend>(b: &B, j: &Job, prior: &Path) -> Result<Prior<B>> {
    let (gpt, tokenizer) = (read_model(prior)?, read_model(&j.model)?);
    let (gpt_name, tokenizer_name) = (prior.display().to_string(), j.model.display().to_string());
    Prior::load_for(b, ModelFile::new(&gpt_name, &gpt), ModelFile::new(&tokenizer_name, &tokenizer))
}

fn encode<B: Backend>(m: &Models<B>, j: &Job, prior: Option<&Path>) -> Result<()> {
    if !is_vgt(&j.output) {
        require_extension(&j.output, "npy", "tokens")?;
    }
    let (t, clip) = open_clip_job(m, j)?;
    let coding = prior.map(|p| load_coding_prior(&m.backend, j, p)).transpose()?;
    let tokens = encode_clip(&m.backend, &t, &clip)?;
    if is_vgt(&j.output) {
        let file = t.token_file(tokens, clip.fps.map(|f| f as f32));
        let plain = videogpt::vgt::write(&file)?;
        let bytes = match &coding {
            Some(p) => {
                let started = Instant::now();
                let coded = videogpt::vgt::write_coded(&file, &p.coding(), |_, _| {})?;
                let n = file.tokens.codes.len();
                let stream = videogpt::vgt::header(&coded)?.payload_bytes;
                eprintln!(
                    "coded {n} tokens under the prior in {:.1}s: {:.3} bits per token, {} bytes ({:.1} % of the {} bytes uncoded)",
                    started.elapsed().as_secs_f64(),
                    (stream * 8) as f64 / n as f64,
                    coded.len(),
                    100.0 * coded.len() as f64 / plain.len() as f64,
                    plain.len()
                );
                coded
            }
            None => plain,
        };
        write_file(&j.output, &bytes, &[&j.input, &j.model])?;
        eprintln!("wrote {} tokens {:?} in {} bytes to {}", file.tokens.codes.len(), file.tokens.shape, bytes.len(), j.output.display());
        return Ok(());
    }
    write_tokens(&j.output, &tokens, &[&j.input, &j.model])?;
    eprintln!("wrote {} tokens {:?} to {}", tokens.codes.len(), tokens.shape, j.output.display());
    Ok(())
}

/// The token grid (B×T'×H'×W') of every model window of a clip, with progress on stderr.
pub(crate) fn encode_clip<B: Backend>(b: &B, t: &Tokenizer<B>, clip: &Video) -> Result<Tokens> {
    let started = Instant::now();
    pollster::block_on(t.encode_clip(b, clip.frames, |w| t.preprocess(b, clip, w), |i, n| progress("encoded", i, n, started)))
}

/// A token grid from an .npy file (T'×H'×W' or B×T'×H'×W').
pub(crate) fn read_token_npy(path: &Path) -> Result<Tokens> {
    let file = std::fs::File::open(path).map_err(|e| Error::Io(format!("cannot open {}: {e}", path.display())))?;
    tokens::npy::read(std::io::BufReader::new(file))
}

fn decode<B: Backend>(m: &Models<B>, j: &Job, fps: Option<f64>, prior: Option<&Path>) -> Result<()> {
    refuse_overwrite(&j.output, &[&j.input, &j.model])?;
    let (b, t) = (&m.backend, load_tokenizer(m, &j.model, j.input_options)?);
    let (tokens, file_fps) = if is_vgt(&j.input) {
        let bytes = read_input(&j.input)?;
        let header = videogpt::vgt::header(&bytes).map_err(|e| in_input(e, &j.input))?;
        if let (Some(hash), None) = (header.prior_hash, prior) {
            bail!(
                Input,
                "{}: its tokens are coded under prior {} (a compressed .vgt file): give that prior's file as --prior",
                j.input.display(),
                videogpt::vgt::hex(&hash)
            );
        }
        let coding = prior.map(|p| load_coding_prior(b, j, p)).transpose()?;
        let started = Instant::now();
        let decoded = |done: usize, n: usize| {
            if done == n || done.is_multiple_of(256) {
                eprintln!("decoded {done}/{n} tokens under the prior ({:.1}s)", started.elapsed().as_secs_f64());
            }
        };
        let f = videogpt::vgt::read_with(&bytes, coding.as_ref().map(|p| p.coding()).as_ref(), decoded).map_err(|e| in_input(e, &j.input))?;
        t.check_token_file(&f)?;
        (f.tokens, f.fps.map(f64::from))
    } else {
        (read_token_npy(&j.input)?, None)
    };
    let started = Instant::now();
    let mut out = pollster::block_on(t.decode(b, &tokens, |i, n| progress("decoded", i, n, started)))?;
    out.fps = Some(fps.or(file_fps).unwrap_or(30.0));
    write_clip(&j.output, &out, &[&j.input, &j.model])?;
    eprintln!("wrote {} frames of {}×{} to {}", out.frames, out.width, out.height, j.output.display());
    Ok(())
}

/// `reconstruct --stream`: y4m in, y4m out, a chunk at a time (see the flag's help). The
/// native path of the page's live mode, on the same chunks, so that the two can be timed alike.
fn reconstruct_stream<B: Backend>(m: &Models<B>, j: &Job) -> Result<()> {
    use std::io::Write;
    use videogpt::video::io::{write_y4m_frames, write_y4m_header, Y4mReader};
    let dash = |p: &Path| p.as_os_str() == "-";
    if !dash(&j.output) {
        require_extension(&j.output, "y4m", "streamed reconstructions")?;
        refuse_overwrite(&j.output, &[&j.input, &j.model])?;
    }
    let (b, t) = (&m.backend, load_tokenizer(m, &j.model, j.input_options)?);
    let stride = t.config().downsample[0];
    let input: Box<dyn std::io::BufRead> = if dash(&j.input) {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        Box::new(std::io::BufReader::new(std::fs::File::open(&j.input).map_err(|e| Error::Io(format!("cannot open {}: {e}", j.input.display())))?))
    };
    let mut y4m = Y4mReader::open(input).map_err(|e| in_input(e, &j.input))?;
    let mut out: Box<dyn Write> = if dash(&j.output) {
        Box::new(std::io::BufWriter::new(std::io::stdout().lock()))
    } else {
        Box::new(std::io::BufWriter::new(std::fs::File::create(&j.output)?))
    };
    let (h, w) = (y4m.height, y4m.width);
    let (mut window, mut chunks, mut header) = (Vec::<Vec<u8>>::new(), 0usize, false);
    let started = Instant::now();
    while let Some(frame) = y4m.next_frame()? {
        window.push(frame);
        if window.len() % stride != 0 || window.len() < stride {
            continue;
        }
        // the new chunk and the one before it as context (the first chunk has none)
        let t0 = Instant::now();
        let clip = Video::new(window.len(), h, w, window.concat())?;
        let x = t.preprocess(b, &clip, 0..clip.frames)?;
        let r = pollster::block_on(t.reconstruct(b, &x, &|| 0.0))?;
        let keep = |v: &Video| v.slice(v.frames - stride, stride);
        let (input, mut output) = (keep(&r.input), keep(&r.output));
        output.fps = y4m.fps;
        if !header {
            write_y4m_header(&mut out, output.width, output.height, y4m.fps)?;
            header = true;
        }
        write_y4m_frames(&mut out, &output)?;
        out.flush()?;
        chunks += 1;
        let psnr = metrics::psnr(&input, &output)?;
        eprintln!("chunk {chunks}: frames {}–{}, PSNR {psnr:.2} dB, {:.0} ms", (chunks - 1) * stride, chunks * stride - 1, t0.elapsed().as_secs_f64() * 1e3);
        window.drain(..window.len() - stride);
    }
    if chunks == 0 {
        bail!(Input, "{}: the stream ended before a whole chunk of {stride} frames", j.input.display());
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!("{chunks} chunks, {} frames in {seconds:.2} s: {:.1} frames/s", chunks * stride, (chunks * stride) as f64 / seconds);
    Ok(())
}

fn reconstruct<B: Backend>(m: &Models<B>, j: &Job, json: bool) -> Result<()> {
    let (b, (t, clip)) = (&m.backend, open_clip_job(m, j)?);
    let started = Instant::now();
    let clock = || started.elapsed().as_secs_f64() * 1e3;
    let mut parts: Vec<Reconstruction> = Vec::new();
    let (windows, _) = t.windows(clip.frames)?;
    for (i, w) in windows.iter().enumerate() {
        parts.push(pollster::block_on(t.reconstruct(b, &t.preprocess(b, &clip, w.clone())?, &clock))?);
        progress("reconstructed", i, windows.len(), started);
    }
    let seconds = started.elapsed().as_secs_f64();
    let n_tokens: usize = parts.iter().map(|r| r.tokens.len()).sum();
    let original = Video::concat(&parts.iter().map(|r| r.input.clone()).collect::<Vec<_>>())?;
    let mut recon = Video::concat(&parts.iter().map(|r| r.output.clone()).collect::<Vec<_>>())?;
    recon.fps = clip.fps;
    write_clip(&j.output, &recon, &[&j.input, &j.model])?;
    // PSNR both ways, each labelled (docs/metrics.md): pooled over the clip's pixels, and the
    // mean of the frames' own PSNRs (what the page and the training logs show)
    let psnr = metrics::psnr(&original, &recon)?;
    let psnr_per_frame = metrics::psnr_per_frame(&original, &recon)?;
    let psnr_frame_mean = psnr_per_frame.iter().sum::<f64>() / psnr_per_frame.len() as f64;
    let ssim = metrics::ssim(&original, &recon)?;
    if json {
        let report = serde_json::json!({
            "input": j.input.display().to_string(),
            "output": j.output.display().to_string(),
            "device": format!("{:?}", j.device).to_lowercase(),
            "resolution": t.resolution,
            "resize": format!("{:?}", t.resize).to_lowercase(),
            "frames": recon.frames,
            "size": [recon.height, recon.width],
            "tokens": n_tokens,
            "psnr": psnr,
            "psnr_frame_mean": psnr_frame_mean,
            "ssim": ssim,
            "psnr_per_frame": psnr_per_frame,
            "ssim_per_frame": metrics::ssim_per_frame(&original, &recon)?,
            "seconds": seconds,
        });
        println!("{report}");
    } else {
        println!("frames  {} at {}×{}", recon.frames, recon.width, recon.height);
        println!("tokens  {n_tokens}");
        println!("PSNR    {psnr:.2} dB over the clip ({psnr_frame_mean:.2} dB mean of the frames')");
        println!("SSIM    {ssim:.4}");
        println!("time    {seconds:.2} s");
    }
    Ok(())
}

pub fn compare_tokens(model: &Path, input: &Path, tokens: &Path, tolerance: f64, o: InputOptions) -> Result<()> {
    let t = load_tokenizer(&Models::new(Cpu), model, o)?;
    let m = &t.vqvae;
    let file = std::fs::File::open(tokens).map_err(|e| Error::Io(format!("cannot open {}: {e}", tokens.display())))?;
    let theirs = tokens::npy::read(std::io::BufReader::new(file))?;
    let clip = read_video(input)?;
    let (ranges, _) = t.windows(clip.frames)?;
    if theirs.shape[0] != ranges.len() {
        bail!(Input, "{} holds {} clips of tokens; {} has {} model windows", tokens.display(), theirs.shape[0], input.display(), ranges.len());
    }
    let (mut total, mut worst) = (0, 0.0f64);
    for (r, codes) in ranges.into_iter().zip(theirs.clips()) {
        let w = video::preprocess(&clip.slice(r.start, r.len()), t.resolution, None, t.resize)?;
        for d in m.disagreements(&w, codes)? {
            total += 1;
            worst = worst.max(d.relative_gap);
            if d.relative_gap > tolerance {
                bail!(
                    Input,
                    "position {}: code {} here, {} in {}, and they are not a near-tie (relative distance gap {:e} > {tolerance:e})",
                    d.position,
                    d.ours,
                    d.theirs,
                    tokens.display(),
                    d.relative_gap
                );
            }
        }
    }
    if total == 0 {
        println!("identical: all {} tokens equal", theirs.codes.len());
    } else {
        println!("{total} of {} tokens differ, all float32 near-ties (largest relative distance gap {worst:.2e})", theirs.codes.len());
    }
    Ok(())
}
