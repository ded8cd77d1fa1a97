//! Reading `.safetensors` checkpoints whose tensor names are VideoGPT's state_dict keys.
//!
//! Every tensor is converted to f32 on load (f32, f16 and bf16 files all load). The model code asks
//! for each key with the shape it expects, and `finish` rejects keys nobody asked for, so a file for
//! another architecture or other hparams fails with the name of the first key that does not fit.

use std::collections::{BTreeSet, HashMap};

use safetensors::tensor::{serialize, TensorView};
use safetensors::{Dtype, SafeTensors};

use crate::{bail, Error, Result};

pub struct WeightFile<'a> {
    tensors: SafeTensors<'a>,
    metadata: HashMap<String, String>,
    taken: BTreeSet<String>,
}

impl<'a> WeightFile<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let (tensors, metadata) = read(bytes)?;
        Ok(WeightFile { tensors, metadata, taken: BTreeSet::new() })
    }

    /// The `__metadata__` string map (VideoGPT hparams live here).
    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    pub fn contains(&self, key: &str) -> bool {
        self.tensors.names().contains(&key)
    }

    /// Whether `key` is stored as f16 (its f32 values then convert back to f16 exactly).
    pub fn is_f16(&self, key: &str) -> bool {
        self.tensors.tensor(key).is_ok_and(|v| v.dtype() == Dtype::F16)
    }

    /// The tensor `key` as f32, checked against the shape the model expects.
    pub fn take(&mut self, key: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self.tensors.tensor(key).map_err(|_| Error::Weights(format!("missing tensor `{key}` (expected shape {shape:?})")))?;
        if view.shape() != shape {
            bail!(Weights, "tensor `{key}` has shape {:?}, expected {shape:?}", view.shape());
        }
        self.taken.insert(key.to_string());
        let bytes = view.data();
        let data: Vec<f32> = match view.dtype() {
            Dtype::F32 => bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect(),
            Dtype::F16 => bytes.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            Dtype::BF16 => bytes.chunks_exact(2).map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()).collect(),
            other => bail!(Weights, "tensor `{key}` has dtype {other:?}; only F32, F16 and BF16 weights load"),
        };
        if let Some(i) = data.iter().position(|v| !v.is_finite()) {
            bail!(Weights, "tensor `{key}` holds a non-finite value at element {i}");
        }
        Ok(data)
    }

    /// Accept a tensor the engine does not use (training state such as BatchNorm's
    /// `num_batches_tracked` or the codebook's EMA buffers) if present, checking only its shape.
    pub fn skip(&mut self, key: &str, shape: &[usize]) -> Result<()> {
        if let Ok(view) = self.tensors.tensor(key) {
            if view.shape() != shape {
                bail!(Weights, "tensor `{key}` has shape {:?}, expected {shape:?}", view.shape());
            }
            self.taken.insert(key.to_string());
        }
        Ok(())
    }

    /// Error on the first tensor under `prefix` that the model did not ask for.
    pub fn finish(&self, prefix: &str) -> Result<()> {
        self.finish_matching(|k| k.starts_with(prefix))
    }

    /// Error on the first tensor outside `prefix` that the model did not ask for.
    pub fn finish_except(&self, prefix: &str) -> Result<()> {
        self.finish_matching(|k| !k.starts_with(prefix))
    }

    fn finish_matching(&self, considered: impl Fn(&str) -> bool) -> Result<()> {
        let mut extra: Vec<&str> = self.tensors.names().into_iter().filter(|k| considered(k) && !self.taken.contains(*k)).collect();
        extra.sort();
        if let Some(k) = extra.first() {
            bail!(Weights, "unexpected tensor `{k}` ({} unexpected in all): the file does not match the hparams in its metadata", extra.len());
        }
        Ok(())
    }
}

/// A `.safetensors` file's tensors and its `__metadata__` string map.
fn read(bytes: &[u8]) -> Result<(SafeTensors<'_>, HashMap<String, String>)> {
    let unreadable = |e| Error::Weights(format!("not a readable safetensors file ({e})"));
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(unreadable)?;
    let tensors = SafeTensors::deserialize(bytes).map_err(unreadable)?;
    Ok((tensors, meta.metadata().clone().unwrap_or_default()))
}

/// A `.safetensors` file of `(key, dtype, shape, little-endian bytes)` tensors with `metadata`,
/// for the weights this crate makes itself (random models for tests and benchmarks).
pub fn to_safetensors(tensors: &[(String, Dtype, Vec<usize>, Vec<u8>)], metadata: HashMap<String, String>) -> Vec<u8> {
    let views: Vec<(&str, TensorView)> =
        tensors.iter().map(|(k, d, s, b)| (k.as_str(), TensorView::new(*d, s.clone(), b).expect("bytes match dtype and shape"))).collect();
    serialize(views, Some(metadata)).expect("an in-memory safetensors file always serialises")
}

/// One file holding a GPT and its VQ-VAE, laid out as VideoGPT's GPT checkpoint does: the GPT's
/// tensors and metadata as they are, the VQ-VAE's tensors under `vqvae.` (its hparams are already
/// in the GPT's metadata as `vqvae.*`).
pub fn bundle_prior(gpt: &[u8], vqvae: &[u8]) -> Result<Vec<u8>> {
    let ((g, meta), (v, _)) = (read(gpt)?, read(vqvae)?);
    let mut tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> =
        g.tensors().into_iter().map(|(k, t)| (k, t.dtype(), t.shape().to_vec(), t.data().to_vec())).collect();
    tensors.extend(v.tensors().into_iter().map(|(k, t)| (format!("vqvae.{k}"), t.dtype(), t.shape().to_vec(), t.data().to_vec())));
    Ok(to_safetensors(&tensors, meta))
}

/// The same file with every f32 tensor stored as f16 (rounded to nearest), as the shipped models
/// are: for benchmarks of weights as they ship.
pub fn to_f16(bytes: &[u8]) -> Result<Vec<u8>> {
    let (t, meta) = read(bytes)?;
    let tensors: Vec<(String, Dtype, Vec<usize>, Vec<u8>)> = t
        .tensors()
        .into_iter()
        .map(|(k, v)| match v.dtype() {
            Dtype::F32 => {
                let halves: Vec<u8> =
                    v.data().chunks_exact(4).flat_map(|b| half::f16::from_f32(f32::from_le_bytes([b[0], b[1], b[2], b[3]])).to_le_bytes()).collect();
                (k, Dtype::F16, v.shape().to_vec(), halves)
            }
            d => (k, d, v.shape().to_vec(), v.data().to_vec()),
        })
        .collect();
    Ok(to_safetensors(&tensors, meta))
}
