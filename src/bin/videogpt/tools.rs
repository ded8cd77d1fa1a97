//! Random models for tests and benchmarks: a VQ-VAE (optionally with its codebook initialised
//! from a clip, as VideoGPT's training does on its first batch) and a GPT prior over a VQ-VAE.

use std::path::Path;

use videogpt::video::{self, io::read_video, Resize};
use videogpt::{Cpu, Error, Result, VqVae, VqVaeConfig};

use crate::commands::{in_file, read_model};
use crate::files::write_file;

/// Hparams given on the command line: their errors are the user's input, not a bad file.
fn from_cli(e: Error) -> Error {
    match e {
        Error::Weights(m) => Error::Input(m),
        other => other,
    }
}

pub fn random_model(
    output: &Path,
    [n_hiddens, n_res_layers, embedding_dim, n_codes, resolution, sequence_length]: [usize; 6],
    downsample: String,
    seed: u64,
    calibrate: Option<&Path>,
) -> Result<()> {
    let meta = [
        ("embedding_dim", embedding_dim.to_string()),
        ("n_codes", n_codes.to_string()),
        ("n_hiddens", n_hiddens.to_string()),
        ("n_res_layers", n_res_layers.to_string()),
        ("downsample", downsample),
        ("resolution", resolution.to_string()),
        ("sequence_length", sequence_length.to_string()),
    ];
    let cfg = VqVaeConfig::from_metadata(&meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect()).map_err(from_cli)?;
    let mut bytes = videogpt::vqvae::random_weights(&cfg, seed);
    if let Some(clip) = calibrate {
        let clip = read_video(clip)?;
        let (windows, _) = video::windows(clip.frames, cfg.sequence_length, cfg.downsample[0]);
        let Some(first) = windows.first() else {
            return Err(Error::Input(format!("the calibration clip has {} frames; the model needs {}", clip.frames, cfg.downsample[0])));
        };
        // VideoGPT's preprocess: the committed test models were calibrated this way
        let x = video::preprocess(&clip.slice(first.start, first.len()), cfg.resolution, None, Resize::VideoGpt)?;
        bytes = videogpt::vqvae::init_codebook_from_clip(&bytes, &x, seed)?;
    }
    write_file(output, &bytes, &[])?;
    eprintln!("wrote a random {} -parameter VQ-VAE to {}", cfg.parameter_count(), output.display());
    Ok(())
}

pub fn random_prior(vqvae: &Path, output: &Path, [hidden_dim, heads, layers, n_cond_frames]: [usize; 4], attn_type: &str, seed: u64) -> Result<()> {
    let vq_bytes = read_model(vqvae)?;
    let vq = VqVae::load(&Cpu, &vq_bytes, "").map_err(|e| in_file(e, vqvae))?;
    let meta = [
        ("hidden_dim", hidden_dim.to_string()),
        ("heads", heads.to_string()),
        ("layers", layers.to_string()),
        ("attn_type", attn_type.to_string()),
        ("n_cond_frames", n_cond_frames.to_string()),
    ];
    let config = videogpt::gpt::GptConfig::from_metadata(&meta.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), &vq.config).map_err(from_cli)?;
    let bytes = videogpt::weights::bundle_prior(&videogpt::gpt::random_weights(&config, &vq.config, seed), &vq_bytes)?;
    videogpt::gpt::Gpt::load(&bytes, None)?; // what we write must load
    write_file(output, &bytes, &[vqvae])?;
    eprintln!("wrote a random {layers}-layer {attn_type} GPT prior over {} to {}", vqvae.display(), output.display());
    Ok(())
}
