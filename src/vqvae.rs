//! The VideoGPT VQ-VAE (Yan et al. 2021; spec §1): a 3-D conv encoder with axial-attention
//! residual blocks, a 2048-code EMA codebook, and a mirrored decoder of transposed convs.

use std::collections::HashMap;

use crate::backend::{Backend, Codes, Dims, Tensor, Volume};
use crate::nn::{
    batchnorm_affine, load_axial_attention, load_batchnorm, load_codebook, load_conv_transpose, AxialAttention, ChannelAffine, Codebook, Conv3d,
    ConvTranspose3d, HostConv,
};
use crate::weights::WeightFile;
use crate::{bail, Error, Result};

/// VideoGPT's VQ-VAE hparams, under VideoGPT's own names (the safetensors `__metadata__`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VqVaeConfig {
    pub embedding_dim: usize,
    pub n_codes: usize,
    pub n_hiddens: usize,
    pub n_res_layers: usize,
    /// Downsampling factor of (T, H, W); powers of two.
    pub downsample: [usize; 3],
    pub resolution: usize,
    pub sequence_length: usize,
}

impl Default for VqVaeConfig {
    /// `train_vqvae.py`'s defaults.
    fn default() -> Self {
        VqVaeConfig { embedding_dim: 256, n_codes: 2048, n_hiddens: 240, n_res_layers: 4, downsample: [4, 4, 4], resolution: 64, sequence_length: 16 }
    }
}

impl VqVaeConfig {
    pub fn from_metadata(meta: &HashMap<String, String>) -> Result<Self> {
        let get =
            |k: &str| meta.get(k).ok_or_else(|| Error::Weights(format!("metadata has no `{k}` (a VideoGPT VQ-VAE file stores its hparams in __metadata__)")));
        let int = |k: &str| -> Result<usize> {
            let v = get(k)?;
            v.trim().parse().map_err(|_| Error::Weights(format!("metadata `{k}` = {v:?} is not a whole number")))
        };
        let ds = get("downsample")?;
        let parts: Vec<usize> = ds
            .trim_matches(|c: char| "()[] ".contains(c))
            .split(',')
            .map(|p| p.trim().parse())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::Weights(format!("metadata `downsample` = {ds:?} is not like \"4,4,4\"")))?;
        let Ok(downsample) = <[usize; 3]>::try_from(parts) else {
            bail!(Weights, "metadata `downsample` = {ds:?} must have three factors (T,H,W)");
        };
        let c = VqVaeConfig {
            embedding_dim: int("embedding_dim")?,
            n_codes: int("n_codes")?,
            n_hiddens: int("n_hiddens")?,
            n_res_layers: int("n_res_layers")?,
            downsample,
            resolution: int("resolution")?,
            sequence_length: int("sequence_length")?,
        };
        c.validate()?;
        Ok(c)
    }

    pub fn to_metadata(&self) -> HashMap<String, String> {
        let d = self.downsample;
        [
            ("format", "videogpt-vqvae".to_string()),
            ("embedding_dim", self.embedding_dim.to_string()),
            ("n_codes", self.n_codes.to_string()),
            ("n_hiddens", self.n_hiddens.to_string()),
            ("n_res_layers", self.n_res_layers.to_string()),
            ("downsample", format!("{},{},{}", d[0], d[1], d[2])),
            ("resolution", self.resolution.to_string()),
            ("sequence_length", self.sequence_length.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub fn validate(&self) -> Result<()> {
        for (name, v) in [("embedding_dim", self.embedding_dim), ("n_codes", self.n_codes), ("n_hiddens", self.n_hiddens)] {
            if v == 0 || v > 1 << 16 {
                bail!(Weights, "hparam {name} = {v} is out of range");
            }
        }
        if !self.n_hiddens.is_multiple_of(2) {
            bail!(Weights, "n_hiddens = {} must be even (2 attention heads, C/2 bottleneck)", self.n_hiddens);
        }
        if self.n_res_layers > 64 {
            bail!(Weights, "n_res_layers = {} is out of range", self.n_res_layers);
        }
        for (d, f) in ["T", "H", "W"].iter().zip(self.downsample) {
            if !f.is_power_of_two() || f > 64 {
                bail!(Weights, "downsample factor {f} for {d} must be a power of two up to 64");
            }
        }
        if self.strides().len() < 2 {
            bail!(Weights, "downsample {:?} needs at least two strided convs: VideoGPT cannot build a model that downsamples by at most 2", self.downsample);
        }
        let [dt, dh, dw] = self.downsample;
        if self.sequence_length == 0 || !self.sequence_length.is_multiple_of(dt) {
            bail!(Weights, "sequence_length {} is not a positive multiple of the temporal downsample {dt}", self.sequence_length);
        }
        if self.resolution == 0 || !self.resolution.is_multiple_of(dh) || !self.resolution.is_multiple_of(dw) {
            bail!(Weights, "resolution {} is not a positive multiple of the spatial downsample {dh}×{dw}", self.resolution);
        }
        Ok(())
    }

    /// Stride of each strided conv: 2 in every dim with halvings left, 1 elsewhere (spec §1.4).
    /// The decoder uses the same order, not reversed (spec §1.6).
    pub fn strides(&self) -> Vec<[usize; 3]> {
        let mut left = self.downsample.map(|d| d.trailing_zeros());
        let n = left.iter().copied().max().unwrap_or(0);
        (0..n)
            .map(|_| {
                let s = left.map(|l| if l > 0 { 2 } else { 1 });
                left = left.map(|l| l.saturating_sub(1));
                s
            })
            .collect()
    }

    /// T'×H'×W' of a `sequence_length`×`resolution`² clip.
    pub fn latent_shape(&self) -> [usize; 3] {
        let [dt, dh, dw] = self.downsample;
        [self.sequence_length / dt, self.resolution / dh, self.resolution / dw]
    }

    /// Check that a T×H×W clip fits the network (every size divisible by its factor).
    pub fn check_clip(&self, t: usize, h: usize, w: usize) -> Result<[usize; 3]> {
        let [dt, dh, dw] = self.downsample;
        if t == 0 || h == 0 || w == 0 || !t.is_multiple_of(dt) || !h.is_multiple_of(dh) || !w.is_multiple_of(dw) {
            bail!(Input, "clip of {t}×{h}×{w} (T×H×W) does not fit downsample {dt},{dh},{dw}: each size must be a positive multiple of its factor");
        }
        Ok([t / dt, h / dh, w / dw])
    }

    /// Multiply-adds ×2 of encoding and of decoding one `sequence_length`×`resolution`² clip:
    /// the convolutions, the axial attention's projections and its score and mix products.
    pub fn flops(&self) -> (f64, f64) {
        let (c, e) = (self.n_hiddens as f64, self.embedding_dim as f64);
        let strides = self.strides();
        let full = [self.sequence_length, self.resolution, self.resolution].map(|v| v as f64);
        let latent = self.latent_shape().map(|v| v as f64);
        let n_lat: f64 = latent.iter().product();
        let conv = |cin: f64, cout: f64, k: f64, positions: f64| 2.0 * cin * cout * k * positions;
        // residual stack at the latent grid: conv3 C→C/2, conv1 C/2→C, 3 axes of q,k,v,fc, attention
        let attention: f64 = latent.iter().map(|&len| 2.0 * 2.0 * n_lat * len * c).sum();
        let block = conv(c, c / 2.0, 27.0, n_lat) + conv(c / 2.0, c, 1.0, n_lat) + 3.0 * conv(c, 4.0 * c, 1.0, n_lat) + attention;
        let stack = self.n_res_layers as f64 * block;
        // strided convs, k=4: positions at each layer's output
        let mut size = full;
        let (mut enc, mut dec) = (0.0, 0.0);
        for (i, s) in strides.iter().enumerate() {
            size = [size[0] / s[0] as f64, size[1] / s[1] as f64, size[2] / s[2] as f64];
            let cin = if i == 0 { 3.0 } else { c };
            enc += conv(cin, c, 64.0, size.iter().product());
        }
        // transposed convs, k=4: every input position meets every tap
        let mut size = latent;
        for (i, s) in strides.iter().enumerate() {
            let cout = if i + 1 == strides.len() { 3.0 } else { c };
            dec += conv(c, cout, 64.0, size.iter().product());
            size = [size[0] * s[0] as f64, size[1] * s[1] as f64, size[2] * s[2] as f64];
        }
        // and the codebook distances
        enc += conv(c, c, 27.0, n_lat) + stack + conv(c, e, 1.0, n_lat) + 2.0 * e * self.n_codes as f64 * n_lat;
        dec += conv(e, c, 1.0, n_lat) + stack;
        (enc, dec)
    }

    pub fn parameter_count(&self) -> usize {
        let (c, e) = (self.n_hiddens, self.embedding_dim);
        let n_strided = self.strides().len();
        let bn = 2 * c;
        let block = bn + c * (c / 2) * 27 + c + (c / 2) * c + bn + 3 * (4 * c * c + c);
        let stack = self.n_res_layers * block + bn;
        let encoder = (3 * c * 64 + c) + (n_strided - 1) * (c * c * 64 + c) + (c * c * 27 + c) + stack;
        let decoder = stack + (n_strided - 1) * (c * c * 64 + c) + (c * 3 * 64 + 3);
        encoder + decoder + (c * e + e) + (e * c + c)
    }
}

/// AttentionResidualBlock: `x + axial(relu(bn(conv1(relu(bn(conv3(relu(bn(x)))))))))`,
/// with the two inner BatchNorms folded into the convs before them.
pub struct ResidualBlock<B: Backend> {
    norm: ChannelAffine<B>,
    conv_reduce: Conv3d<B>,
    conv_expand: Conv3d<B>,
    attn: AxialAttention<B>,
}

impl<B: Backend> ResidualBlock<B> {
    fn load(b: &B, w: &mut WeightFile, key: &str, c: usize) -> Result<Self> {
        let k = |i: usize| format!("{key}.block.{i}");
        Ok(ResidualBlock {
            norm: load_batchnorm(b, w, &k(0), c)?,
            conv_reduce: HostConv::load(w, &k(2), c, c / 2, 3, [1; 3], false)?.fold_batchnorm(batchnorm_affine(w, &k(3), c / 2)?).upload(b)?,
            conv_expand: HostConv::load(w, &k(5), c / 2, c, 1, [1; 3], false)?.fold_batchnorm(batchnorm_affine(w, &k(6), c)?).upload(b)?,
            attn: load_axial_attention(b, w, &k(8), c)?,
        })
    }

    fn forward(&self, b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let h = b.affine_relu(x, &self.norm)?;
        let h = b.conv3d(&h, &self.conv_reduce, None, true)?;
        let h = b.conv3d(&h, &self.conv_expand, None, true)?;
        let qkv = b.conv3d(&h, &self.attn.qkv, None, false)?;
        let a = b.axial_attention(&qkv, &self.attn)?;
        b.conv3d(&a, &self.attn.out, Some(x), false)
    }
}

/// `n_res_layers` residual blocks, then BatchNorm3d and ReLU.
pub struct ResStack<B: Backend> {
    blocks: Vec<ResidualBlock<B>>,
    norm: ChannelAffine<B>,
}

impl<B: Backend> ResStack<B> {
    fn load(b: &B, w: &mut WeightFile, key: &str, c: usize, n: usize) -> Result<Self> {
        let blocks = (0..n).map(|i| ResidualBlock::load(b, w, &format!("{key}.{i}"), c)).collect::<Result<_>>()?;
        Ok(ResStack { blocks, norm: load_batchnorm(b, w, &format!("{key}.{n}"), c)? })
    }

    fn forward(&self, b: &B, mut x: Tensor<B>) -> Result<Tensor<B>> {
        for block in &self.blocks {
            x = block.forward(b, &x)?;
        }
        b.affine_relu(&x, &self.norm)
    }
}

pub struct Encoder<B: Backend> {
    convs: Vec<Conv3d<B>>,
    conv_last: Conv3d<B>,
    res_stack: ResStack<B>,
}

impl<B: Backend> Encoder<B> {
    fn forward(&self, b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let mut h = b.conv3d(x, &self.convs[0], None, true)?;
        for conv in &self.convs[1..] {
            h = b.conv3d(&h, conv, None, true)?;
        }
        let h = b.conv3d(&h, &self.conv_last, None, false)?;
        self.res_stack.forward(b, h)
    }
}

pub struct Decoder<B: Backend> {
    res_stack: ResStack<B>,
    convts: Vec<ConvTranspose3d<B>>,
}

impl<B: Backend> Decoder<B> {
    fn forward(&self, b: &B, x: Tensor<B>) -> Result<Tensor<B>> {
        let mut h = self.res_stack.forward(b, x)?;
        let last = self.convts.len() - 1;
        for (i, convt) in self.convts.iter().enumerate() {
            h = b.conv_transpose3d(&h, convt, i < last)?; // no ReLU (and no squashing) after the last
        }
        Ok(h)
    }
}

pub struct VqVae<B: Backend> {
    pub config: VqVaeConfig,
    encoder: Encoder<B>,
    decoder: Decoder<B>,
    pre_vq_conv: Conv3d<B>,
    post_vq_conv: Conv3d<B>,
    codebook: Codebook<B>,
}

impl<B: Backend> VqVae<B> {
    /// Load from the bytes of a `.safetensors` file with VideoGPT state_dict keys and hparams in
    /// its metadata. `prefix` is `""` for a VQ-VAE file and `"vqvae."` inside a GPT checkpoint.
    pub fn load(b: &B, bytes: &[u8], prefix: &str) -> Result<Self> {
        let mut w = WeightFile::parse(bytes)?;
        // inside a GPT checkpoint the VQ-VAE's hparams carry the same prefix as its tensors
        let meta: HashMap<String, String> = if prefix.is_empty() {
            w.metadata().clone()
        } else {
            w.metadata().iter().filter_map(|(k, v)| k.strip_prefix(prefix).map(|k| (k.to_string(), v.clone()))).collect()
        };
        let config = VqVaeConfig::from_metadata(&meta)?;
        let model = Self::from_weights(b, &mut w, prefix, config)?;
        w.finish(prefix)?;
        Ok(model)
    }

    pub fn from_weights(b: &B, w: &mut WeightFile, prefix: &str, config: VqVaeConfig) -> Result<Self> {
        config.validate()?;
        let (c, e) = (config.n_hiddens, config.embedding_dim);
        let strides = config.strides();
        let key = |k: &str| format!("{prefix}{k}");

        let convs = strides
            .iter()
            .enumerate()
            .map(|(i, &s)| HostConv::load(w, &key(&format!("encoder.convs.{i}")), if i == 0 { 3 } else { c }, c, 4, s, true)?.upload(b))
            .collect::<Result<_>>()?;
        let encoder = Encoder {
            convs,
            conv_last: HostConv::load(w, &key("encoder.conv_last"), c, c, 3, [1; 3], true)?.upload(b)?,
            res_stack: ResStack::load(b, w, &key("encoder.res_stack"), c, config.n_res_layers)?,
        };
        let res_stack = ResStack::load(b, w, &key("decoder.res_stack"), c, config.n_res_layers)?;
        let convts = strides
            .iter()
            .enumerate()
            .map(|(i, &s)| {
                let cout = if i + 1 == strides.len() { 3 } else { c };
                load_conv_transpose(b, w, &key(&format!("decoder.convts.{i}")), c, cout, s)
            })
            .collect::<Result<_>>()?;
        Ok(VqVae {
            encoder,
            decoder: Decoder { res_stack, convts },
            pre_vq_conv: HostConv::load(w, &key("pre_vq_conv"), c, e, 1, [1; 3], true)?.upload(b)?,
            post_vq_conv: HostConv::load(w, &key("post_vq_conv"), e, c, 1, [1; 3], true)?.upload(b)?,
            codebook: load_codebook(b, w, &key("codebook"), config.n_codes, e)?,
            config,
        })
    }

    /// `vqvae.encode(x)`: a 3×T×H×W clip in [-0.5, 0.5] → its T'×H'×W' codes.
    pub fn encode(&self, b: &B, x: &Tensor<B>) -> Result<Codes<B>> {
        if x.dims.c != 3 {
            bail!(Input, "the VQ-VAE takes RGB clips (3 channels), got {}", x.dims.c);
        }
        self.config.check_clip(x.dims.t, x.dims.h, x.dims.w)?;
        let z = self.pre_vq_conv_forward(b, x)?;
        b.codebook_argmin(&z, &self.codebook)
    }

    /// The continuous latents before quantisation, `pre_vq_conv(encoder(x))`: E×T'×H'×W'.
    pub fn latents(&self, b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        self.config.check_clip(x.dims.t, x.dims.h, x.dims.w)?;
        self.pre_vq_conv_forward(b, x)
    }

    fn pre_vq_conv_forward(&self, b: &B, x: &Tensor<B>) -> Result<Tensor<B>> {
        let h = self.encoder.forward(b, x)?;
        b.conv3d(&h, &self.pre_vq_conv, None, false)
    }

    /// `vqvae.decode(codes)`: codebook rows → post_vq_conv → decoder, a 3×T×H×W clip (unclamped).
    pub fn decode(&self, b: &B, codes: &Codes<B>) -> Result<Tensor<B>> {
        let h = b.codebook_lookup(codes, &self.codebook)?;
        let h = b.conv3d(&h, &self.post_vq_conv, None, false)?;
        self.decoder.forward(b, h)
    }

    /// Encode a host clip and bring the codes back.
    pub async fn encode_volume(&self, b: &B, x: &Volume) -> Result<Vec<u32>> {
        let codes = self.encode(b, &b.upload_volume(x)?)?;
        b.read_codes(&codes).await
    }

    /// Decode host codes of a T'×H'×W' grid and bring the clip back.
    pub async fn decode_codes(&self, b: &B, codes: &[u32], dims: [usize; 3]) -> Result<Volume> {
        if codes.len() != dims.iter().product::<usize>() {
            bail!(Input, "{} codes do not fill a {dims:?} grid", codes.len());
        }
        if let Some(&bad) = codes.iter().find(|&&c| c as usize >= self.config.n_codes) {
            bail!(Input, "code {bad} is out of range for a codebook of {} codes", self.config.n_codes);
        }
        if dims.contains(&0) {
            bail!(Input, "empty latent grid {dims:?}");
        }
        let x = self.decode(b, &b.upload_codes(codes, dims)?)?;
        b.read_volume(&x).await
    }

    /// Output dims of decoding a T'×H'×W' grid.
    pub fn decoded_dims(&self, latent: [usize; 3]) -> Dims {
        let d = self.config.downsample;
        Dims::new(3, latent[0] * d[0], latent[1] * d[1], latent[2] * d[2])
    }
}

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
        let dist = |p: usize, code: u32| -> f64 { (0..e).map(|i| (z.buf[i * n + p] as f64 - emb[code as usize * e + i] as f64).powi(2)).sum() };
        let mut out = Vec::new();
        for p in 0..n {
            if ours[p] != theirs[p] {
                if theirs[p] as usize >= self.config.n_codes {
                    bail!(Input, "token {} at position {p} is out of range for {} codes", theirs[p], self.config.n_codes);
                }
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
