//! Original VideoGPT checkpoints (PyTorch Lightning `.ckpt` files, `torch.save` files) read
//! without executing them, and converted to this engine's safetensors.
//!
//! `pickle` runs the pickle stack machine with every global kept as a name; `torch` reads the zip
//! and legacy containers and rebuilds tensors from their storages. This module finds the model in
//! what they return: Lightning's `state_dict` (or a bare state_dict), the hparams in
//! `hyper_parameters['args']` (an `argparse.Namespace`, as VideoGPT's `save_hyperparameters()`
//! stores it), and writes the same file `save_vqvae`/`save_gpt` would: VideoGPT's keys as they
//! are, hparams in the safetensors metadata. Optimizer states, callbacks and loops are ignored.

pub mod pickle;
pub mod torch;
mod zip;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use safetensors::Dtype;

use self::pickle::{Heap, Object, Value};
use self::torch::{Checkpoint, DType, TensorRecord};
use crate::gpt::{Gpt, GptConfig};
use crate::vqvae::VqVaeConfig;
use crate::{bail, weights, Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    VqVae,
    Prior,
}

pub struct Converted {
    pub kind: Kind,
    /// `zip` or `legacy`
    pub format: &'static str,
    pub safetensors: Vec<u8>,
    /// The hparams written into the metadata.
    pub metadata: BTreeMap<String, String>,
    /// Top-level entries of the checkpoint that carry no weights (optimizer states, callbacks…).
    pub ignored: Vec<String>,
}

/// Whether these bytes are a PyTorch checkpoint (zip or legacy format) rather than safetensors.
pub fn is_checkpoint(bytes: &[u8]) -> bool {
    torch::is_zip(bytes) || torch::is_legacy(bytes)
}

/// The safetensors bytes of a model file: a safetensors file as it is, a PyTorch checkpoint
/// converted (in f32, as trained). Every loader takes model files through this.
pub fn model_bytes(bytes: &[u8]) -> Result<Cow<'_, [u8]>> {
    if is_checkpoint(bytes) {
        Ok(Cow::Owned(convert(bytes, false)?.safetensors))
    } else {
        Ok(Cow::Borrowed(bytes))
    }
}

/// Convert a VideoGPT VQ-VAE or GPT checkpoint; `f16` stores f32 tensors as f16.
pub fn convert(bytes: &[u8], f16: bool) -> Result<Converted> {
    let ck = Checkpoint::read(bytes)?;
    let heap = &ck.heap;
    let (state_dict, ignored) = find_state_dict(heap, &ck.root)?;
    let hparams = Hparams::find(heap, &ck.root);
    let tensors: BTreeMap<&str, &TensorRecord> = state_dict.iter().map(|(k, t)| (k.as_str(), *t)).collect();

    let is_vqvae = tensors.contains_key("codebook.embeddings") && tensors.keys().any(|k| k.starts_with("encoder."));
    let is_prior = tensors.contains_key("fc_in.weight") && tensors.keys().any(|k| k.starts_with("attn_stack."));
    let (kind, metadata) = if is_prior {
        if !tensors.contains_key("vqvae.codebook.embeddings") {
            bail!(Weights, "a GPT checkpoint without its VQ-VAE (`vqvae.*` keys); VideoGPT's priors carry it");
        }
        let vq = vqvae_config(&hparams, &tensors, "vqvae.")?;
        let gpt = gpt_metadata(&hparams, &vq)?;
        (Kind::Prior, gpt)
    } else if is_vqvae {
        (Kind::VqVae, vqvae_config(&hparams, &tensors, "")?.to_metadata())
    } else {
        let mut some: Vec<&str> = tensors.keys().copied().take(4).collect();
        if some.is_empty() {
            some.push("(no tensors)");
        }
        bail!(
            Weights,
            "the checkpoint holds neither a VideoGPT VQ-VAE (encoder.*, codebook.*) nor a VideoGPT prior (fc_in, attn_stack.*): its {} tensors start {}",
            tensors.len(),
            some.join(", ")
        );
    };

    let mut out = Vec::new();
    for (key, t) in &tensors {
        let data = ck.tensor(t)?;
        let shape: Vec<usize> = t.size.iter().map(|&d| d as usize).collect();
        let (dtype, data) = match t.storage.dtype {
            DType::F32 if f16 => (Dtype::F16, f32s(&data).map(|v| half::f16::from_f32(v).to_le_bytes()).collect::<Vec<_>>().concat()),
            DType::F32 => (Dtype::F32, data),
            DType::F16 => (Dtype::F16, data),
            DType::BF16 => (Dtype::BF16, data),
            DType::F64 => (Dtype::F32, data.chunks_exact(8).flat_map(|b| (f64::from_le_bytes(b.try_into().unwrap()) as f32).to_le_bytes()).collect()),
            DType::I64 => (Dtype::I64, data),
            other => bail!(Weights, "tensor `{key}` has dtype {other:?}; VideoGPT's weights are floats (and i64 counters)"),
        };
        out.push((key.to_string(), dtype, shape, data));
    }
    let safetensors = weights::to_safetensors(&out, metadata.clone());
    // load what was written, so that a checkpoint that does not fit its hparams fails here with the
    // key that does not fit, not later in a page
    match kind {
        Kind::VqVae => {
            crate::vqvae::VqVae::load(&crate::Cpu, &safetensors, "")?;
        }
        Kind::Prior => {
            Gpt::load(&safetensors, None)?;
            crate::vqvae::VqVae::load(&crate::Cpu, &safetensors, "vqvae.")?;
        }
    }
    Ok(Converted { kind, format: ck.format, safetensors, metadata: metadata.into_iter().collect(), ignored })
}

fn f32s(b: &[u8]) -> impl Iterator<Item = f32> + '_ {
    b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap()))
}

fn key_name(heap: &Heap, k: &Value) -> String {
    match k {
        Value::Str(s) => s.to_string(),
        other => heap.describe(other),
    }
}

/// Lightning's `state_dict`, our trainer's `model`, or the root itself when it is a state_dict;
/// and the names of the other top-level entries.
/// A state_dict's (key, tensor) entries, and the checkpoint's other top-level keys.
type StateDict<'h> = (Vec<(String, &'h TensorRecord)>, Vec<String>);

fn find_state_dict<'h>(heap: &'h Heap, root: &Value) -> Result<StateDict<'h>> {
    let Some(items) = heap.dict_items(root) else { bail!(Weights, "the checkpoint holds {}, not a dict of weights", heap.describe(root)) };
    let is_tensor = |v: &Value| torch::as_tensor(heap, v).is_some();
    let (sd, ignored) = if items.iter().all(|(_, v)| is_tensor(v)) && !items.is_empty() {
        (root, Vec::new())
    } else if let Some(sd) = heap.lookup(root, "state_dict").or_else(|| heap.lookup(root, "model")) {
        let ignored = items
            .iter()
            .map(|(k, _)| key_name(heap, k))
            .filter(|k| !["state_dict", "model", "hyper_parameters", "hparams_name", "args"].contains(&k.as_str()))
            .collect();
        (sd, ignored)
    } else {
        let keys: Vec<String> = items.iter().take(8).map(|(k, _)| key_name(heap, k)).collect();
        bail!(Weights, "the checkpoint has no `state_dict` (its top-level keys: {})", keys.join(", "));
    };
    let Some(entries) = heap.dict_items(sd) else { bail!(Weights, "the checkpoint's state_dict is {}", heap.describe(sd)) };
    let mut out = Vec::new();
    for (k, v) in entries {
        let Value::Str(k) = k else { bail!(Weights, "a state_dict key that is {}", heap.describe(k)) };
        let Some(t) = torch::as_tensor(heap, v) else { bail!(Weights, "state_dict entry `{k}` is {}, not a tensor", heap.describe(v)) };
        out.push((k.to_string(), t));
    }
    Ok((out, ignored))
}

/// The hparams a checkpoint carries: `hyper_parameters['args']` (VideoGPT: an argparse.Namespace),
/// `hyper_parameters` itself, or our trainer's `args` dict; looked up in that order.
struct Hparams<'h> {
    heap: &'h Heap,
    scopes: Vec<&'h Value>,
}

impl<'h> Hparams<'h> {
    fn find(heap: &'h Heap, root: &'h Value) -> Self {
        let mut scopes = Vec::new();
        if let Some(hp) = heap.lookup(root, "hyper_parameters") {
            if let Some(args) = heap.lookup(hp, "args") {
                scopes.push(args);
            }
            scopes.push(hp);
        }
        if let Some(args) = heap.lookup(root, "args") {
            scopes.push(args);
        }
        Hparams { heap, scopes }
    }

    fn get(&self, name: &str) -> Option<&'h Value> {
        self.scopes.iter().find_map(|s| self.heap.lookup(s, name))
    }

    fn int(&self, name: &str) -> Result<Option<usize>> {
        match self.get(name) {
            None | Some(Value::None) => Ok(None),
            Some(Value::Int(i)) if *i >= 0 => Ok(Some(*i as usize)),
            Some(Value::Bool(b)) => Ok(Some(*b as usize)),
            Some(v) => bail!(Weights, "hparam `{name}` is {}, not a whole number", self.heap.describe(v)),
        }
    }

    fn str(&self, name: &str) -> Option<&'h str> {
        match self.get(name) {
            Some(Value::Str(s)) => Some(s),
            _ => None,
        }
    }

    fn ints(&self, name: &str) -> Result<Option<Vec<usize>>> {
        let Some(v) = self.get(name) else { return Ok(None) };
        match self.heap.get(v) {
            Some(Object::List(items) | Object::Tuple(items)) => items
                .iter()
                .map(|x| match x {
                    Value::Int(i) if *i > 0 => Ok(*i as usize),
                    other => bail!(Weights, "hparam `{name}` holds {}", self.heap.describe(other)),
                })
                .collect::<Result<Vec<_>>>()
                .map(Some),
            _ => bail!(Weights, "hparam `{name}` is {}, not a list", self.heap.describe(v)),
        }
    }
}

/// The VQ-VAE's hparams: the shapes decide what they can (so a mislabelled hparam cannot make a
/// model that mis-loads), `args` the rest (strides, resolution, clip length).
fn vqvae_config(hp: &Hparams, tensors: &BTreeMap<&str, &TensorRecord>, prefix: &str) -> Result<VqVaeConfig> {
    let shape = |k: &str| tensors.get(format!("{prefix}{k}").as_str()).map(|t| t.size.iter().map(|&d| d as usize).collect::<Vec<_>>());
    let Some([n_codes, embedding_dim]) = shape("codebook.embeddings").and_then(|s| <[usize; 2]>::try_from(s).ok()) else {
        bail!(Weights, "`{prefix}codebook.embeddings` is not a 2-d table")
    };
    let Some(n_hiddens) = shape("encoder.conv_last.conv.weight").and_then(|s| s.first().copied()) else {
        bail!(Weights, "the checkpoint has no `{prefix}encoder.conv_last.conv.weight`")
    };
    let res_prefix = format!("{prefix}encoder.res_stack.");
    let n_res_layers = tensors
        .keys()
        .filter_map(|k| {
            // `res_stack` is the residual blocks, then a norm and a ReLU: count the blocks
            let mut parts = k.strip_prefix(res_prefix.as_str())?.split('.');
            let i = parts.next()?.parse::<usize>().ok()?;
            (parts.next()? == "block").then_some(i)
        })
        .max()
        .map_or(0, |m| m + 1);
    let is_gpt = !prefix.is_empty();
    for (name, got) in [("embedding_dim", embedding_dim), ("n_codes", n_codes), ("n_hiddens", n_hiddens), ("n_res_layers", n_res_layers)] {
        match hp.int(name)? {
            Some(v) if !is_gpt && v != got => bail!(Weights, "hparam {name} = {v} but the weights have {got}"),
            _ => {}
        }
    }
    let need = |name: &str| -> Result<usize> {
        hp.int(name)?.ok_or_else(|| Error::Weights(format!("the checkpoint's hparams have no `{name}` (VideoGPT stores it in hyper_parameters['args'])")))
    };
    let (resolution, sequence_length) = (need("resolution")?, need("sequence_length")?);
    let downsample = if is_gpt {
        // the prior's position embeddings are the latent grid: the strides follow from it
        let latent: Vec<usize> = (0..3)
            .map(|i| {
                tensors
                    .get(format!("attn_stack.pos_embd.emb.d_{i}").as_str())
                    .and_then(|t| t.size.first().map(|&n| n as usize))
                    .filter(|&n| n > 0)
                    .ok_or_else(|| Error::Weights(format!("the prior has no `attn_stack.pos_embd.emb.d_{i}` to read its latent grid from")))
            })
            .collect::<Result<_>>()?;
        let full = [sequence_length, resolution, resolution];
        let mut ds = [0; 3];
        for i in 0..3 {
            if !full[i].is_multiple_of(latent[i]) {
                bail!(Weights, "a latent grid of {latent:?} does not divide a {sequence_length}×{resolution}×{resolution} clip");
            }
            ds[i] = full[i] / latent[i];
        }
        ds
    } else {
        let Some(ds) = hp.ints("downsample")? else {
            bail!(Weights, "the checkpoint's hparams have no `downsample` (VideoGPT stores it in hyper_parameters['args'])")
        };
        <[usize; 3]>::try_from(ds.clone()).map_err(|_| Error::Weights(format!("hparam downsample = {ds:?} must have three factors")))?
    };
    let c = VqVaeConfig { embedding_dim, n_codes, n_hiddens, n_res_layers, downsample, resolution, sequence_length };
    c.validate()?;
    Ok(c)
}

fn gpt_metadata(hp: &Hparams, vq: &VqVaeConfig) -> Result<HashMap<String, String>> {
    let need = |name: &str| -> Result<usize> {
        hp.int(name)?.ok_or_else(|| Error::Weights(format!("the prior's hparams have no `{name}` (VideoGPT stores it in hyper_parameters['args'])")))
    };
    let attn_type = hp.str("attn_type").unwrap_or("full");
    let meta: HashMap<String, String> = [
        ("format", "videogpt-gpt".to_string()),
        ("hidden_dim", need("hidden_dim")?.to_string()),
        ("heads", need("heads")?.to_string()),
        ("layers", need("layers")?.to_string()),
        ("attn_type", attn_type.to_string()),
        // VideoGPT sets class_cond_dim to None for unconditional priors
        ("class_cond_dim", hp.int("class_cond_dim")?.unwrap_or(0).to_string()),
        ("n_cond_frames", hp.int("n_cond_frames")?.unwrap_or(0).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    // validated, and written with the VQ-VAE's hparams under `vqvae.` as every GPT file is
    Ok(GptConfig::from_metadata(&meta, vq)?.to_metadata(vq))
}
