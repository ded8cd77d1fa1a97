//! Writing the commands' outputs safely: whole or not at all (a temporary file beside the
//! target, renamed over it when complete), and never over one of the command's inputs.

use std::path::{Path, PathBuf};

use videogpt::tokens::{self, Tokens};
use videogpt::video::{io::write_video, Video};
use videogpt::{bail, Error, Result};

/// Refuse to write over one of the command's inputs (by path, or the same file through a link).
pub fn refuse_overwrite(output: &Path, inputs: &[&Path]) -> Result<()> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if let Some(input) = inputs.iter().find(|i| same(output, i)) {
        bail!(Input, "{} is also an input ({}): refusing to write over it", output.display(), input.display());
    }
    Ok(())
}

/// A sibling of `output` to write first (same folder, same extension: ffmpeg picks the format by it).
fn temporary_beside(output: &Path) -> PathBuf {
    let name = output.file_name().map_or("output".into(), |n| n.to_string_lossy().into_owned());
    output.with_file_name(format!(".{name}.{}.partial", std::process::id())).with_extension(output.extension().unwrap_or_default())
}

/// Write `output` whole or not at all: into a temporary file beside it, renamed over it on
/// success, so a failure leaves any old file as it was; never over one of `inputs`.
fn write_atomically(output: &Path, inputs: &[&Path], write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    refuse_overwrite(output, inputs)?;
    let tmp = temporary_beside(output);
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, output).map_err(|e| Error::Io(format!("cannot write {}: {e}", output.display()))));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        // the user knows the file by the name they gave
        let name = |p: &Path| p.display().to_string();
        match e {
            Error::Io(m) => Error::Io(m.replace(&name(&tmp), &name(output))),
            Error::Input(m) => Error::Input(m.replace(&name(&tmp), &name(output))),
            other => other,
        }
    })
}

pub fn write_file(output: &Path, bytes: &[u8], inputs: &[&Path]) -> Result<()> {
    write_atomically(output, inputs, |tmp| std::fs::write(tmp, bytes).map_err(|e| Error::Io(format!("cannot write {}: {e}", output.display()))))
}

pub fn write_clip(output: &Path, clip: &Video, inputs: &[&Path]) -> Result<()> {
    write_atomically(output, inputs, |tmp| write_video(tmp, clip))
}

pub fn write_tokens(output: &Path, tokens: &Tokens, inputs: &[&Path]) -> Result<()> {
    let mut bytes = Vec::new();
    tokens::npy::write(&mut bytes, tokens)?;
    write_file(output, &bytes, inputs)
}
