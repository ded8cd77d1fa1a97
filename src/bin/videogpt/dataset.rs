//! `videogpt encode` over a dataset: every video under a folder (or every path in a `.txt` list),
//! split between machines with `--shard i/n` (file k of the sorted list goes to shard k mod n),
//! one token file per clip and a manifest per shard. A clip whose token file exists is not
//! encoded again, so a shard that was stopped resumes where it was; a clip that fails is reported
//! and the rest go on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use videogpt::backend::Backend;
use videogpt::engine::Models;
use videogpt::video::io::read_video;
use videogpt::{bail, Error, Result};

use crate::commands::{load_tokenizer, note_dropped, read_token_npy};
use crate::files::{write_file, write_tokens};
use crate::Job;

/// Which share of the files this run takes: `i/n`, 0 ≤ i < n.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("{s:?} is not i/n (e.g. 0/4)"))?;
        let (index, count) = (
            i.trim().parse::<usize>().map_err(|_| format!("{i:?} is not a number"))?,
            n.trim().parse::<usize>().map_err(|_| format!("{n:?} is not a number"))?,
        );
        if count == 0 || index >= count {
            return Err(format!("shard {index}/{count}: the index counts from 0 and must be below the number of shards"));
        }
        Ok(Shard { index, count })
    }
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

/// File name endings taken as videos when a folder is walked.
const VIDEO_EXTENSIONS: &[&str] = &["mp4", "m4v", "mov", "webm", "mkv", "avi", "ogv", "ogg", "y4m", "npy", "mpg", "mpeg", "gif"];

/// Whether `input` names a dataset (a folder, or a `.txt` list of paths) rather than one clip.
pub fn is_dataset(input: &Path) -> bool {
    input.is_dir() || input.extension().is_some_and(|e| e.eq_ignore_ascii_case("txt"))
}

/// The dataset's clips, sorted, each once: the videos under a folder (recursively), or the
/// non-empty lines of a list file (relative paths are taken from the list's folder).
pub fn list_clips(input: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if input.is_dir() {
        let mut stack = vec![input.to_path_buf()];
        while let Some(dir) = stack.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|e| Error::Io(format!("cannot list {}: {e}", dir.display())))?;
            for entry in entries {
                let path = entry.map_err(|e| Error::Io(format!("cannot list {}: {e}", dir.display())))?.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().and_then(|e| e.to_str()).is_some_and(|e| VIDEO_EXTENSIONS.iter().any(|v| v.eq_ignore_ascii_case(e))) {
                    files.push(path);
                }
            }
        }
    } else {
        let text = std::fs::read_to_string(input).map_err(|e| Error::Io(format!("cannot read the list {}: {e}", input.display())))?;
        let base = input.parent().unwrap_or(Path::new("."));
        files.extend(text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(|l| base.join(l)));
    }
    files.sort();
    files.dedup();
    if files.is_empty() {
        bail!(Input, "{} holds no video files ({})", input.display(), VIDEO_EXTENSIONS.join(", "));
    }
    Ok(files)
}

/// One manifest line, JSON.
fn manifest_line(input: &Path, tokens: Option<(&Path, [usize; 4])>, error: Option<&str>) -> String {
    let mut line = serde_json::json!({ "input": input.display().to_string() });
    if let Some((path, shape)) = tokens {
        line["tokens"] = path.file_name().map(|n| n.to_string_lossy().into_owned()).into();
        line["shape"] = shape.to_vec().into();
    }
    if let Some(e) = error {
        line["error"] = e.into();
    }
    line.to_string()
}

/// Encode this shard's clips of the dataset `j.input` into the folder `j.output`.
pub fn encode_dataset<B: Backend>(m: &Models<B>, j: &Job, shard: Shard) -> Result<()> {
    let files = list_clips(&j.input)?;
    std::fs::create_dir_all(&j.output).map_err(|e| Error::Io(format!("cannot create the folder {}: {e}", j.output.display())))?;
    let (b, t) = (&m.backend, load_tokenizer(m, &j.model, j.input_options)?);
    let mine: Vec<(usize, &PathBuf)> = files.iter().enumerate().filter(|(k, _)| k % shard.count == shard.index).collect();
    eprintln!("shard {}/{}: {} of {} clips", shard.index, shard.count, mine.len(), files.len());
    let started = Instant::now();
    let (mut manifest, mut encoded, mut resumed, mut failed, mut windows) = (Vec::new(), 0usize, 0usize, 0usize, 0usize);
    for (n, &(k, input)) in mine.iter().enumerate() {
        // the clip's place in the whole sorted list makes its name unique across shards
        let stem = input.file_stem().map_or("clip".into(), |s| s.to_string_lossy().into_owned());
        let out = j.output.join(format!("{k:06}-{stem}.npy"));
        let result = if out.exists() {
            read_token_npy(&out).map(|tokens| (tokens.shape, true))
        } else {
            encode_file(b, &t, input, &out, &j.model).map(|shape| (shape, false))
        };
        match result {
            Ok((shape, again)) => {
                windows += shape[0];
                if again {
                    resumed += 1;
                } else {
                    encoded += 1;
                }
                manifest.push(manifest_line(input, Some((&out, shape)), None));
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {}: {e}", input.display());
                manifest.push(manifest_line(input, None, Some(&e.to_string())));
            }
        }
        if (n + 1) % 10 == 0 || n + 1 == mine.len() {
            eprintln!("shard {}/{}: {}/{} clips ({:.1} s)", shard.index, shard.count, n + 1, mine.len(), started.elapsed().as_secs_f64());
        }
    }
    let name = if shard.count == 1 { "manifest.jsonl".to_string() } else { format!("manifest-{}-of-{}.jsonl", shard.index, shard.count) };
    let manifest_path = j.output.join(name);
    let mut text = Vec::new();
    for line in &manifest {
        writeln!(text, "{line}").expect("writing to memory");
    }
    write_file(&manifest_path, &text, &[&j.input, &j.model])?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "shard {}/{}: encoded {encoded} clips ({windows} windows in all) in {seconds:.1} s, {:.2} clips/s; {resumed} already done; {failed} failed; manifest {}",
        shard.index,
        shard.count,
        encoded as f64 / seconds.max(1e-9),
        manifest_path.display()
    );
    if failed > 0 {
        bail!(Input, "{failed} of {} clips could not be encoded (the error lines above name them; the manifest lists every clip)", mine.len());
    }
    Ok(())
}

/// One clip's windows → its token file; the token grid's shape.
fn encode_file<B: Backend>(b: &B, t: &videogpt::workflow::Tokenizer<B>, input: &Path, out: &Path, model: &Path) -> Result<[usize; 4]> {
    let clip = read_video(input)?;
    note_dropped(t, &clip)?;
    let tokens = pollster::block_on(t.encode_clip(b, clip.frames, |w| t.preprocess(b, &clip, w), |_, _| {}))?;
    write_tokens(out, &tokens, &[input, model])?;
    Ok(tokens.shape)
}
