//! The commands about model files themselves: `info` and `convert`.

use std::path::Path;

use videogpt::workflow::ModelInfo;
use videogpt::{bail, Result, VqVaeConfig};

use crate::commands::{in_file, read_model};
use crate::files::write_file;

/// `videogpt convert`: a VideoGPT checkpoint to safetensors, printing what it found.
pub fn convert(input: &Path, output: &Path, f16: bool) -> Result<()> {
    crate::files::refuse_overwrite(output, &[input])?;
    let bytes = std::fs::read(input).map_err(|e| videogpt::Error::Io(format!("cannot read {}: {e}", input.display())))?;
    if !videogpt::checkpoint::is_checkpoint(&bytes) {
        bail!(Weights, "{}: not a PyTorch checkpoint (torch.save's zip or legacy format); a .safetensors file needs no conversion", input.display());
    }
    let c = videogpt::checkpoint::convert(&bytes, f16).map_err(|e| in_file(e, input))?;
    println!("checkpoint       {} (torch {} format)", input.display(), c.format);
    if !c.ignored.is_empty() {
        println!("ignored          {}", c.ignored.join(", "));
    }
    write_file(output, &c.safetensors, &[input])?;
    info(output)?;
    println!("wrote            {} ({} bytes{})", output.display(), c.safetensors.len(), if f16 { ", f16" } else { "" });
    Ok(())
}

pub fn info(path: &Path) -> Result<()> {
    if crate::commands::is_vgt(path) {
        return token_file_info(path);
    }
    let bytes = read_model(path)?;
    println!("model            {}", path.display());
    match ModelInfo::read(&bytes).map_err(|e| in_file(e, path))? {
        ModelInfo::Prior { gpt: c, vqvae } => {
            println!("kind             GPT prior over VQ-VAE tokens");
            println!("hidden_dim       {}", c.hidden_dim);
            println!("heads            {}", c.heads);
            println!("layers           {}", c.layers);
            println!("attn_type        {}", if c.attn_type == videogpt::gpt::AttnType::Sparse { "sparse" } else { "full" });
            println!("class_cond_dim   {}", c.class_cond_dim);
            println!("n_cond_frames    {}", c.n_cond_frames);
            println!("parameters       {} (without its VQ-VAE)", c.parameter_count());
            println!("its VQ-VAE (`vqvae.` keys):");
            print_vqvae(&vqvae);
        }
        ModelInfo::VqVae(c) => {
            println!("kind             VQ-VAE");
            print_vqvae(&c);
        }
    }
    Ok(())
}

/// `videogpt info clip.vgt`: what its header says (a compressed file's tokens need the prior to
/// decode, its header does not).
fn token_file_info(path: &Path) -> Result<()> {
    let bytes = crate::commands::read_input(path)?;
    let h = videogpt::vgt::header(&bytes).map_err(|e| crate::commands::in_input(e, path))?;
    let n: usize = h.shape.iter().product();
    println!("token file       {} ({} bytes, .vgt version {})", path.display(), bytes.len(), h.version);
    println!("model            {} ({})", h.model_id, videogpt::vgt::hex(&h.model_hash));
    println!("tokens           {} = {}×{}×{}×{} (B×T'×H'×W')", n, h.shape[0], h.shape[1], h.shape[2], h.shape[3]);
    match h.prior_hash {
        Some(p) => println!("coded under      prior {} (decoding needs it: --prior)", videogpt::vgt::hex(&p)),
        None => println!("coded            bit-packed"),
    }
    println!("bits per token   {:.3}", (h.payload_bytes * 8) as f64 / n as f64);
    if let Some(fps) = h.fps {
        println!("frame rate       {fps}");
    }
    Ok(())
}

fn print_vqvae(c: &VqVaeConfig) {
    let [t, h, w] = c.latent_shape();
    println!("embedding_dim    {}", c.embedding_dim);
    println!("n_codes          {}", c.n_codes);
    println!("n_hiddens        {}", c.n_hiddens);
    println!("n_res_layers     {}", c.n_res_layers);
    println!("downsample       {},{},{}", c.downsample[0], c.downsample[1], c.downsample[2]);
    println!("resolution       {}", c.resolution);
    println!("sequence_length  {}", c.sequence_length);
    println!("parameters       {}", c.parameter_count());
    let (enc, dec) = c.flops();
    let frames = c.sequence_length as f64;
    println!("GFLOPs per frame {:.3} to encode, {:.3} to decode", enc / frames / 1e9, dec / frames / 1e9);
    println!("input clip       {}×{}×{} (T×H×W)", c.sequence_length, c.resolution, c.resolution);
    println!("latent shape     {t}×{h}×{w} = {} tokens of {:.0} bits", t * h * w, (c.n_codes as f64).log2().ceil());
}
