//! The VQ-VAE's layers on the GPU: the [`Backend`] impl, one dispatch (or two) per layer, in the
//! order `vqvae/mod.rs` calls them: the clip's preprocessing, the encoder's convolutions and
//! attention, the codebook search, the decoder's transposed convolutions, and the readback of a
//! reconstruction as bytes.

use std::rc::Rc;

use super::params::*;
use super::*;
use crate::backend::{Backend, Codes, Dims, Tensor, Volume};
use crate::nn::{AxialAttention, ChannelAffine, ChannelNorm, Codebook, Conv3d, ConvTranspose3d};
use crate::video::Video;

impl Gpu {
    /// `preprocess` of a T×H×W×3 uint8 clip already in a GPU buffer (bytes packed four to a word).
    pub(super) fn preprocess_rgb(&self, rgb: &wgpu::Buffer, [frames, height, width]: [usize; 3], resolution: usize, resize: Resize) -> Result<Tensor<Gpu>> {
        let plan = crate::video::ResizePlan::for_size([frames, height, width], resolution, None, resize)?;
        // [offset, count] per output row or column, then the (index, weight) pairs they point at
        let taps = |per_output: &[crate::video::Taps]| -> Vec<u32> {
            let mut table = Vec::with_capacity(per_output.len() * 2);
            let mut pairs = Vec::new();
            for t in per_output {
                table.extend([(per_output.len() * 2 + pairs.len()) as u32, t.len() as u32]);
                pairs.extend(t.iter().flat_map(|&(i, w)| [i as u32, w.to_bits()]));
            }
            table.extend(pairs);
            table
        };
        // the tables depend only on the sizes: made once per input size a stream comes in at
        let key = ([frames, height, width], resolution, resize);
        let cached = self.resize_tables.borrow().get(&key).cloned();
        let tables = match cached {
            Some(tables) => tables,
            None => {
                let tables = Rc::new((
                    self.upload_bytes(bytemuck::cast_slice(&taps(&plan.rows)), "resize taps")?,
                    self.upload_bytes(bytemuck::cast_slice(&taps(&plan.cols)), "resize taps")?,
                ));
                let mut cache = self.resize_tables.borrow_mut();
                if cache.len() >= 64 {
                    cache.clear();
                }
                cache.insert(key, tables.clone());
                tables
            }
        };
        let (rows, cols) = (&tables.0, &tables.1);
        let levels = match self.levels.get() {
            Some(levels) => levels,
            None => {
                let levels: Vec<f32> = (0..256).map(|b| b as f32 / 255.0).collect();
                let levels = self.upload_bytes(bytemuck::cast_slice(&levels), "levels")?;
                self.levels.get_or_init(|| levels)
            }
        };
        let dims = Dims::new(3, plan.frames, resolution, resolution);
        let out = self.storage(dims.len(), "preprocessed clip")?;
        let pixels = plan.frames * resolution * resolution;
        let rgba = self.storage(pixels, "preprocessed clip as bytes")?;
        let (gx, gy) = workgroups(pixels, 256, self.limits.max_compute_workgroups_per_dimension)?;
        let params = PreprocessParams {
            frames: plan.frames as u32,
            height: height as u32,
            width: width as u32,
            res: resolution as u32,
            row_threads: gx * 256,
            ..Default::default()
        };
        self.dispatch(self.kernels.preprocess(), &params, &[rgb, rows, cols, levels, &out, &rgba], (gx, gy, 1))?;
        Ok(Tensor { dims, buf: out.with_pixels(rgba) })
    }
    /// `codebook_argmin.wgsl`, also writing the codes' rows of `table` when one is given.
    pub(super) fn argmin(&self, z: &Tensor<Self>, cb: &Codebook<Self>, table: Option<&Codebook<Self>>) -> Result<(Codes<Self>, Option<Tensor<Self>>)> {
        if cb.dim > ARGMIN_MAX_DIM {
            bail!(Gpu, "codebook vectors of {} exceed the kernel's {ARGMIN_MAX_DIM}", cb.dim);
        }
        let n = z.dims.positions();
        let out = self.storage(n, "codes")?;
        let embedded = table.map(|t| self.storage(t.dim * n, "decoder input")).transpose()?;
        let (gx, gy) = workgroups(n, 1, self.limits.max_compute_workgroups_per_dimension)?;
        let table_dim = table.map_or(0, |t| t.dim);
        let params = CodebookArgminParams {
            dim: cb.dim as u32,
            n_codes: cb.n_codes as u32,
            positions: n as u32,
            groups_x: gx,
            table_dim: table_dim as u32,
            ..Default::default()
        };
        // without a table, stand-ins fill its bindings (the kernel touches neither)
        let (t, e) = match (table, &embedded) {
            (Some(t), Some(e)) => (&t.embeddings, e),
            _ => (&cb.norms, &self.unused_outputs()?.0),
        };
        self.dispatch(self.kernels.codebook_argmin(), &params, &[&z.buf, &cb.embeddings, &cb.norms, &out, t, e], (gx, gy, 1))?;
        self.count_flops(2 * n * cb.n_codes * cb.dim, 2 * n * cb.n_codes * cb.dim);
        // the codebook and its norms, and the table's rows
        self.count_weight_bytes((4 * cb.n_codes * (cb.dim + 1) + 4 * table_dim * n.min(cb.n_codes)) as u64);
        let [t_, h, w] = [z.dims.t, z.dims.h, z.dims.w];
        let embedded = match (table, embedded) {
            (Some(t), Some(buf)) => Some(Tensor { dims: Dims::new(t.dim, t_, h, w), buf }),
            _ => None,
        };
        Ok((Codes { dims: [t_, h, w], buf: out }, embedded))
    }

    pub(super) fn conv3d_fused(
        &self,
        x: &Tensor<Self>,
        norm: Option<&ChannelAffine<Self>>,
        conv: &Conv3d<Self>,
        residual: Option<&Tensor<Self>>,
        relu: bool,
    ) -> Result<Tensor<Self>> {
        let (i, k, s, pad) = (x.dims, conv.kernel, conv.stride, conv.pad_front());
        let o = Dims::new(conv.cout, i.t / s[0], i.h / s[1], i.w / s[2]);
        let out = self.storage(o.len(), "conv3d output")?;
        let flags = if relu { CONV_RELU } else { 0 } | if residual.is_some() { CONV_RESIDUAL } else { 0 } | if norm.is_some() { CONV_INPUT_NORM } else { 0 };
        let [k_t, k_h, k_w] = k.map(|v| v as u32);
        let [s_t, s_h, s_w] = s.map(|v| v as u32);
        let [pad_t, pad_h, pad_w] = pad.map(|v| v as u32);
        #[rustfmt::skip]
        let params = Conv3dParams {
            cin: conv.cin as u32, cout: conv.cout as u32, flags,
            in_t: i.t as u32, in_h: i.h as u32, in_w: i.w as u32,
            out_t: o.t as u32, out_h: o.h as u32, out_w: o.w as u32,
            k_t, k_h, k_w, s_t, s_h, s_w, pad_t, pad_h, pad_w,
            ..Default::default()
        };
        // unused bindings still need a buffer; the bias is read-only and always there
        let res = residual.map_or(&conv.bias, |r| &r.buf);
        let (scale, shift) = norm.map_or((&conv.bias, &conv.bias), |n| (&n.scale, &n.shift));
        let k = self.kernels.conv3d().for_channels(conv.cout);
        let groups = (o.positions().div_ceil(k.tile_n) as u32, conv.cout.div_ceil(k.tile_m) as u32, 1);
        self.dispatch(&k.kernel, &params, &[&x.buf, &conv.weight, &conv.bias, res, &out, scale, shift], groups)?;
        let depth = 2 * conv.cin * conv.kernel.iter().product::<usize>();
        // the kernel, the bias, and the fused norm's scale and shift
        self.count_weight_bytes((4 * (conv.cout * conv.cin * conv.kernel.iter().product::<usize>() + conv.cout + norm.map_or(0, |_| 2 * conv.cin))) as u64);
        self.count_flops(groups.0 as usize * k.tile_n * groups.1 as usize * k.tile_m * depth, o.positions() * conv.cout * depth);
        Ok(Tensor { dims: o, buf: out })
    }

    pub(super) fn conv_transpose3d_fused(
        &self,
        x: &Tensor<Self>,
        norm: Option<&ChannelAffine<Self>>,
        convt: &ConvTranspose3d<Self>,
        relu: bool,
    ) -> Result<Tensor<Self>> {
        let (i, s) = (x.dims, convt.stride);
        let o = Dims::new(convt.cout, i.t * s[0], i.h * s[1], i.w * s[2]);
        let out = self.storage(o.len(), "conv_transpose3d output")?;
        let flags = if relu { CONV_RELU } else { 0 } | if norm.is_some() { CONV_INPUT_NORM } else { 0 };
        let [s_t, s_h, s_w] = s.map(|v| v as u32);
        #[rustfmt::skip]
        let params = ConvTranspose3dParams {
            cin: convt.cin as u32, cout: convt.cout as u32, flags,
            in_t: i.t as u32, in_h: i.h as u32, in_w: i.w as u32,
            s_t, s_h, s_w,
            ..Default::default()
        };
        let (scale, shift) = norm.map_or((&convt.bias, &convt.bias), |n| (&n.scale, &n.shift));
        let classes = (s[0] * s[1] * s[2]) as u32;
        // per class, each output sums over cin × (4/s)³ taps
        let depth = 2 * convt.cin * 64 / classes as usize;
        self.count_weight_bytes((4 * (convt.cin * convt.cout * 64 + convt.cout + norm.map_or(0, |_| 2 * convt.cin))) as u64);
        if convt.cout <= FEW_CHANNELS {
            // one thread per position computes every channel (and, for RGB, the pixel's bytes)
            let rgba = self.storage(o.positions(), "decoded clip as bytes")?;
            let k = self.kernels.conv_transpose3d_few();
            self.dispatch(
                k,
                &ConvTranspose3dFewParams::from(params),
                &[&x.buf, &convt.weight, &convt.bias, &out, scale, shift, &rgba],
                (i.positions().div_ceil(256) as u32, 1, classes),
            )?;
            // four lanes per position, whatever cout is
            self.count_flops(
                i.positions().next_multiple_of(256) * FEW_CHANNELS * depth * classes as usize,
                i.positions() * convt.cout * depth * classes as usize,
            );
            let buf = if convt.cout == 3 { out.with_pixels(rgba) } else { out };
            return Ok(Tensor { dims: o, buf });
        }
        let k = self.kernels.conv_transpose3d().for_channels(convt.cout);
        let groups = (i.positions().div_ceil(k.tile_n) as u32, convt.cout.div_ceil(k.tile_m) as u32, classes);
        self.dispatch(&k.kernel, &params, &[&x.buf, &convt.weight, &convt.bias, &out, scale, shift], groups)?;
        let tiles = groups.0 as usize * k.tile_n * groups.1 as usize * k.tile_m;
        self.count_flops(tiles * depth * classes as usize, i.positions() * convt.cout * depth * classes as usize);
        Ok(Tensor { dims: o, buf: out })
    }
}

impl Backend for Gpu {
    fn as_gpu(&self) -> Option<&crate::Gpu> {
        Some(self)
    }
    type Buffer = GpuBuffer;
    type IndexBuffer = GpuBuffer;

    fn upload(&self, data: &[f32]) -> Result<GpuBuffer> {
        self.upload_bytes(bytemuck::cast_slice(data), "weights")
    }

    fn upload_codes(&self, codes: &[u32], dims: [usize; 3]) -> Result<Codes<Self>> {
        Ok(Codes { dims, buf: self.upload_u32(codes, "codes")? })
    }

    fn conv3d(&self, x: &Tensor<Self>, conv: &Conv3d<Self>, residual: Option<&Tensor<Self>>, relu: bool) -> Result<Tensor<Self>> {
        self.conv3d_fused(x, None, conv, residual, relu)
    }

    fn conv3d_normed(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>, conv: &Conv3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        self.conv3d_fused(x, Some(bn), conv, None, relu)
    }

    fn conv_transpose3d(&self, x: &Tensor<Self>, convt: &ConvTranspose3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        self.conv_transpose3d_fused(x, None, convt, relu)
    }

    fn conv_transpose3d_normed(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>, convt: &ConvTranspose3d<Self>, relu: bool) -> Result<Tensor<Self>> {
        self.conv_transpose3d_fused(x, Some(bn), convt, relu)
    }

    fn affine_relu(&self, x: &Tensor<Self>, bn: &ChannelAffine<Self>) -> Result<Tensor<Self>> {
        let out = self.storage(x.dims.len(), "batchnorm output")?;
        let (gx, gy) = workgroups(x.dims.len(), 256, self.limits.max_compute_workgroups_per_dimension)?;
        let params = AffineReluParams { positions: x.dims.positions() as u32, total: x.dims.len() as u32, row_threads: gx * 256, ..Default::default() };
        self.dispatch(self.kernels.affine_relu(), &params, &[&x.buf, &bn.scale, &bn.shift, &out], (gx, gy, 1))?;
        self.count_weight_bytes((8 * x.dims.c) as u64);
        Ok(Tensor { dims: x.dims, buf: out })
    }

    fn channel_norm(&self, x: &Tensor<Self>, norm: &ChannelNorm<Self>, relu: bool, residual: Option<&Tensor<Self>>) -> Result<Tensor<Self>> {
        let out = self.storage(x.dims.len(), "layer norm output")?;
        let n = x.dims.positions();
        let (gx, gy) = workgroups(n, 256, self.limits.max_compute_workgroups_per_dimension)?;
        let params = ChannelNormParams {
            channels: x.dims.c as u32,
            positions: n as u32,
            row_threads: gx * 256,
            relu: relu as u32,
            residual: residual.is_some() as u32,
            ..Default::default()
        };
        // without a residual the input stands in for it (the kernel does not read it; binding the
        // output twice would alias a writable buffer)
        let res = residual.map_or(&x.buf, |r| &r.buf);
        self.dispatch(self.kernels.channel_norm(), &params, &[&x.buf, &norm.weight, &norm.bias, res, &out], (gx, gy, 1))?;
        self.count_weight_bytes((8 * x.dims.c) as u64);
        Ok(Tensor { dims: x.dims, buf: out })
    }

    fn axial_attention(&self, qkv: &Tensor<Self>, attn: &AxialAttention<Self>) -> Result<Tensor<Self>> {
        let d = qkv.dims;
        let (c, heads) = (attn.channels, attn.n_head);
        let longest = d.t.max(d.h).max(d.w);
        if longest > ATTENTION_MAX_LEN || c / heads > ATTENTION_MAX_D_HEAD {
            bail!(
                Gpu,
                "axial attention over {longest} positions with {} channels per head exceeds the kernel's {ATTENTION_MAX_LEN}/{ATTENTION_MAX_D_HEAD}",
                c / heads
            );
        }
        let out = self.storage(3 * c * d.positions(), "attention output")?;
        let (gx, gy) = workgroups(d.positions(), 1, self.limits.max_compute_workgroups_per_dimension)?;
        #[rustfmt::skip]
        let params = AxialAttentionParams {
            channels: c as u32, n_head: heads as u32, d_head: (c / heads) as u32, positions: d.positions() as u32,
            t: d.t as u32, h: d.h as u32, w: d.w as u32, groups_x: gx,
        };
        self.dispatch(self.kernels.axial_attention(), &params, &[&qkv.buf, &out], (gx, gy, 3 * heads as u32))?;
        // q·k and the weighted sum of v, per position, over the keys of its three axes
        let flops = 4 * c * d.positions() * (d.t + d.h + d.w);
        self.count_flops(flops, flops);
        Ok(Tensor { dims: Dims { c: 3 * c, ..d }, buf: out })
    }

    fn codebook_argmin(&self, z: &Tensor<Self>, cb: &Codebook<Self>) -> Result<Codes<Self>> {
        Ok(self.argmin(z, cb, None)?.0)
    }

    fn codebook_argmin_lookup(&self, z: &Tensor<Self>, cb: &Codebook<Self>, table: &Codebook<Self>) -> Result<(Codes<Self>, Tensor<Self>)> {
        let (codes, h) = self.argmin(z, cb, Some(table))?;
        Ok((codes, h.expect("the table was given")))
    }

    fn preprocess(&self, video: &crate::video::Video, resolution: usize, resize: Resize) -> Result<Tensor<Self>> {
        let rgb = self.upload_transient(&video.rgb, "video frames")?;
        self.preprocess_rgb(&rgb, [video.frames, video.height, video.width], resolution, resize)
    }

    fn codebook_lookup(&self, codes: &Codes<Self>, cb: &Codebook<Self>) -> Result<Tensor<Self>> {
        let [t, h, w] = codes.dims;
        let dims = Dims::new(cb.dim, t, h, w);
        let out = self.storage(dims.len(), "codebook lookup")?;
        let (gx, gy) = workgroups(dims.len(), 256, self.limits.max_compute_workgroups_per_dimension)?;
        let params = CodebookLookupParams { dim: cb.dim as u32, n_codes: cb.n_codes as u32, positions: dims.positions() as u32, row_threads: gx * 256 };
        self.dispatch(self.kernels.codebook_lookup(), &params, &[&codes.buf, &cb.embeddings, &out], (gx, gy, 1))?;
        self.count_weight_bytes((4 * cb.dim * dims.positions().min(cb.n_codes)) as u64);
        Ok(Tensor { dims, buf: out })
    }

    async fn read_volume(&self, x: &Tensor<Self>) -> Result<Volume> {
        Ok(Volume { dims: x.dims, data: self.read_f32(&x.buf, x.dims.len()).await? })
    }

    async fn read_codes(&self, codes: &Codes<Self>) -> Result<Vec<u32>> {
        self.read_u32(&codes.buf, codes.dims.iter().product()).await
    }

    /// The codes and both clips' bytes come back through one staging buffer: one wait per chunk.
    async fn read_reconstruction(&self, codes: &Codes<Self>, input: &Tensor<Self>, output: &Tensor<Self>) -> Result<(Vec<u32>, Video, Video)> {
        let d = output.dims;
        if input.dims != d || d.c != 3 {
            bail!(Input, "a reconstruction's input {:?} and output {:?} must be the same RGB clip size", input.dims, d);
        }
        let n = d.positions();
        let n_codes: usize = codes.dims.iter().product();
        let (code_bytes, clip_bytes) = ((n_codes * 4) as u64, (n * 4) as u64);
        // the kernels that made the clips wrote their bytes too, unless the input was uploaded as
        // floats: then one to_rgba8 pass packs both
        let bytes = if let (Some(a), Some(b)) = (input.buf.pixels(), output.buf.pixels()) {
            self.read_parts(&[(&codes.buf, code_bytes), (a, clip_bytes), (b, clip_bytes)]).await?
        } else {
            let rgba = self.storage(2 * n, "rgba frames")?;
            let (gx, gy) = workgroups(2 * n, 256, self.limits.max_compute_workgroups_per_dimension)?;
            self.dispatch(
                self.kernels.to_rgba8(),
                &ToRgba8Params { positions: n as u32, row_threads: gx * 256, ..Default::default() },
                &[&input.buf, &output.buf, &rgba],
                (gx, gy, 1),
            )?;
            self.read_parts(&[(&codes.buf, code_bytes), (&rgba, 2 * clip_bytes)]).await?
        };
        let (code_bytes, pixels) = bytes.split_at(n_codes * 4);
        let clip = |pixels: &[u8]| Video::new(d.t, d.h, d.w, pixels.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect());
        let (a, b) = pixels.split_at(n * 4);
        Ok((bytemuck::pod_collect_to_vec(code_bytes), clip(a)?, clip(b)?))
    }
}
