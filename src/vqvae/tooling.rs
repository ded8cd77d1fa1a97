//! Tooling around the VQ-VAE, not the model itself: checking codes made elsewhere against the
//! CPU's, random weights for tests and benchmarks, the state_dict's key list, and VideoGPT's
//! data-dependent codebook init applied to a file.

use super::*;

/// A position where two encodings of the same clip chose different codes.
#[derive(Clone, Debug)]
pub struct CodeDisagreement {
    pub position: usize,
    pub ours: u32,
    pub theirs: u32,
    /// |d(z, e_ours) − d(z, e_theirs)| / ‖z‖², squared distances in f64: how close to a tie the
    /// two choices are (float32 rounding decides ties below about 1e-5).
    pub relative_gap: f64,
}

impl VqVae<crate::Cpu> {
    /// Encode `x` on the CPU and compare with `theirs`, codes of the same clip made elsewhere (the
    /// GPU, the browser). Backends sum in different orders, so a latent almost equidistant from
    /// two codes may go either way; every disagreement is returned with how near a tie it was.
    pub fn disagreements(&self, x: &Volume, theirs: &[u32]) -> Result<Vec<CodeDisagreement>> {
        let cpu = crate::Cpu;
        let x = cpu.upload_volume(x)?;
        let z = self.latents(&cpu, &x)?;
        let ours = self.encode(&cpu, &x)?.buf;
        if ours.len() != theirs.len() {
            bail!(Input, "{} tokens to compare with {} of this clip", theirs.len(), ours.len());
        }
        let (e, n, emb) = (self.codebook.dim, ours.len(), &self.codebook.embeddings);
        crate::tokens::check_range(theirs, self.config.n_codes)?;
        let dist = |p: usize, code: u32| -> f64 { (0..e).map(|i| (z.buf[i * n + p] as f64 - emb[code as usize * e + i] as f64).powi(2)).sum() };
        let mut out = Vec::new();
        for p in 0..n {
            if ours[p] != theirs[p] {
                let norm: f64 = (0..e).map(|i| (z.buf[i * n + p] as f64).powi(2)).sum();
                let relative_gap = (dist(p, ours[p]) - dist(p, theirs[p])).abs() / norm.max(f64::MIN_POSITIVE);
                out.push(CodeDisagreement { position: p, ours: ours[p], theirs: theirs[p], relative_gap });
            }
        }
        Ok(out)
    }
}

/// A `.safetensors` VQ-VAE with random weights for `config` (PyTorch-like init scales, BatchNorm
/// statistics away from identity), for benchmarks and tests of sizes no fixture has.
pub fn random_weights(config: &VqVaeConfig, seed: u64) -> Vec<u8> {
    use safetensors::Dtype;
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut uniform = move || rng.next_f32();
    let mut tensors = Vec::new();
    for (key, shape) in config.state_dict_shapes() {
        let n: usize = shape.iter().product();
        let fan_in = if shape.len() > 1 { n / shape[0] } else { 1 };
        let values: Vec<f32> = if key.ends_with("num_batches_tracked") {
            tensors.push((key, Dtype::I64, shape, 0i64.to_le_bytes().to_vec()));
            continue;
        } else if key.ends_with("running_var") {
            (0..n).map(|_| 0.5 + uniform()).collect()
        } else if key.ends_with("running_mean") || key.ends_with(".bias") && !key.contains("conv") {
            (0..n).map(|_| 0.2 * (uniform() - 0.5)).collect()
        } else if shape.len() == 1 && !key.contains("conv") && !key.contains("fc") && !key.starts_with("codebook") {
            (0..n).map(|_| 0.5 + uniform()).collect() // BatchNorm gamma
        } else if key.starts_with("codebook") {
            (0..n).map(|_| uniform() - 0.5).collect()
        } else {
            let bound = 1.0 / (fan_in as f32).sqrt();
            (0..n).map(|_| bound * (2.0 * uniform() - 1.0)).collect()
        };
        tensors.push((key, Dtype::F32, shape, bytemuck::cast_slice(&values).to_vec()));
    }
    crate::weights::to_safetensors(&tensors, config.to_metadata())
}

impl VqVaeConfig {
    /// Every key of VideoGPT's VQ-VAE state_dict with its shape, in state_dict order.
    pub fn state_dict_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let (c, e, k) = (self.n_hiddens, self.embedding_dim, self.n_codes);
        let mut keys = KeyList::default();
        let n = self.strides().len();
        for i in 0..n {
            keys.add(format!("encoder.convs.{i}.conv.weight"), &[c, if i == 0 { 3 } else { c }, 4, 4, 4]);
            keys.add(format!("encoder.convs.{i}.conv.bias"), &[c]);
        }
        keys.add("encoder.conv_last.conv.weight", &[c, c, 3, 3, 3]);
        keys.add("encoder.conv_last.conv.bias", &[c]);
        keys.res_stack("encoder.res_stack", c, self.n_res_layers);
        keys.res_stack("decoder.res_stack", c, self.n_res_layers);
        for i in 0..n {
            let cout = if i + 1 == n { 3 } else { c };
            keys.add(format!("decoder.convts.{i}.convt.weight"), &[c, cout, 4, 4, 4]);
            keys.add(format!("decoder.convts.{i}.convt.bias"), &[cout]);
        }
        keys.add("pre_vq_conv.conv.weight", &[e, c, 1, 1, 1]);
        keys.add("pre_vq_conv.conv.bias", &[e]);
        keys.add("post_vq_conv.conv.weight", &[c, e, 1, 1, 1]);
        keys.add("post_vq_conv.conv.bias", &[c]);
        keys.add("codebook.embeddings", &[k, e]);
        keys.add("codebook.N", &[k]);
        keys.add("codebook.z_avg", &[k, e]);
        keys.0
    }
}

#[derive(Default)]
struct KeyList(Vec<(String, Vec<usize>)>);

impl KeyList {
    fn add(&mut self, key: impl Into<String>, shape: &[usize]) {
        self.0.push((key.into(), shape.to_vec()));
    }

    fn batchnorm(&mut self, key: &str, n: usize) {
        for p in ["weight", "bias", "running_mean", "running_var"] {
            self.add(format!("{key}.{p}"), &[n]);
        }
        self.add(format!("{key}.num_batches_tracked"), &[]);
    }

    fn res_stack(&mut self, key: &str, c: usize, n_res_layers: usize) {
        for i in 0..n_res_layers {
            let b = format!("{key}.{i}.block");
            self.batchnorm(&format!("{b}.0"), c);
            self.add(format!("{b}.2.conv.weight"), &[c / 2, c, 3, 3, 3]);
            self.batchnorm(&format!("{b}.3"), c / 2);
            self.add(format!("{b}.5.conv.weight"), &[c, c / 2, 1, 1, 1]);
            self.batchnorm(&format!("{b}.6"), c);
            for axis in ["attn_w", "attn_h", "attn_t"] {
                for p in ["w_qs", "w_ks", "w_vs", "fc"] {
                    self.add(format!("{b}.8.{axis}.{p}.weight"), &[c, c]);
                }
                self.add(format!("{b}.8.{axis}.fc.bias"), &[c]);
            }
        }
        self.batchnorm(&format!("{key}.{n_res_layers}"), c);
    }
}

/// VideoGPT's data-dependent codebook init (spec §1.8) applied to a weights file: the codebook
/// becomes a random choice of the clip's encoder outputs (tiled with N(0, (0.01/√E)²)-scale noise
/// when the clip has fewer positions than codes), so that a random model still uses many codes.
pub fn init_codebook_from_clip(bytes: &[u8], clip: &Volume, seed: u64) -> Result<Vec<u8>> {
    use safetensors::tensor::{serialize, Dtype, TensorView};
    let cpu = crate::Cpu;
    let model = VqVae::load(&cpu, bytes, "")?;
    let z = model.latents(&cpu, &cpu.upload_volume(clip)?)?;
    let (e, n, k) = (z.dims.c, z.dims.positions(), model.config.n_codes);
    let mut rng = crate::rng::SplitMix64::new(seed);
    let mut uniform = move || rng.next_f32();
    let noise = 0.01 / (e as f32).sqrt();
    let mut order: Vec<usize> = (0..n * k.div_ceil(n)).collect();
    for i in (1..order.len()).rev() {
        order.swap(i, ((uniform() * (i + 1) as f32) as usize).min(i)); // Fisher–Yates
    }
    let mut emb = Vec::with_capacity(k * e);
    for &r in &order[..k] {
        let tiled = r >= n;
        for c in 0..e {
            let jitter = if tiled { noise * 3.4641 * (uniform() - 0.5) } else { 0.0 }; // same variance
            emb.push(z.buf[c * n + r % n] + jitter);
        }
    }
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| Error::Weights(e.to_string()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(|e| Error::Weights(e.to_string()))?;
    let emb_bytes: &[u8] = bytemuck::cast_slice(&emb);
    let views: Vec<(String, TensorView)> = st
        .iter()
        .map(|(name, view)| {
            if name == "codebook.embeddings" || name == "codebook.z_avg" {
                (name.to_string(), TensorView::new(Dtype::F32, vec![k, e], emb_bytes).expect("consistent"))
            } else {
                (name.to_string(), view)
            }
        })
        .collect();
    serialize(views, meta.metadata().clone()).map_err(|e| Error::Weights(e.to_string()))
}
