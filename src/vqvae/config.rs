//! The VQ-VAE's hparams (VideoGPT's names, read from and written to safetensors metadata), their
//! checks, and what follows from them: strides, latent shape, FLOPs, parameter count.

use std::collections::HashMap;

use crate::{bail, Error, Result};

/// The largest frame side a model may declare or be run at.
pub const MAX_RESOLUTION: usize = 1024;
/// The most frames a model's clips may have.
pub const MAX_SEQUENCE_LENGTH: usize = 1024;

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
        // checked before anything is sized from them: model files are untrusted input
        if self.resolution > MAX_RESOLUTION || self.sequence_length > MAX_SEQUENCE_LENGTH {
            bail!(
                Weights,
                "resolution {} or sequence_length {} is past the limits ({MAX_RESOLUTION}, {MAX_SEQUENCE_LENGTH})",
                self.resolution,
                self.sequence_length
            );
        }
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
