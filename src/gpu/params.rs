//! The uniform parameter block of each kernel, as a Rust struct laid out like the WGSL
//! `struct Params` it fills (field for field, padding included). A test reads every kernel's
//! WGSL and checks the names and order, so the two cannot drift apart.

use bytemuck::{Pod, Zeroable};

macro_rules! kernel_params {
    ($($(#[$doc:meta])* $name:ident in $file:literal { $($field:ident: $ty:ty),* $(,)? })*) => {
        $(
            $(#[$doc])*
            #[repr(C)]
            #[derive(Clone, Copy, Default, Pod, Zeroable)]
            pub(super) struct $name { $(pub(super) $field: $ty),* }
        )*
        /// (kernel file, field names in order) of every parameter block.
        #[cfg(test)]
        const ALL: &[(&str, &str, &[&str])] = &[$(($file, include_str!(concat!("../../shaders/", $file)), &[$(stringify!($field)),*])),*];
    };
}

kernel_params! {
    PreprocessParams in "preprocess.wgsl" { frames: u32, height: u32, width: u32, res: u32, row_threads: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
    Conv3dParams in "conv3d.wgsl" {
        cin: u32, cout: u32, flags: u32, _pad0: u32,
        in_t: u32, in_h: u32, in_w: u32, _pad1: u32,
        out_t: u32, out_h: u32, out_w: u32, _pad2: u32,
        k_t: u32, k_h: u32, k_w: u32, _pad3: u32,
        s_t: u32, s_h: u32, s_w: u32, _pad4: u32,
        pad_t: u32, pad_h: u32, pad_w: u32, _pad5: u32,
    }
    /// Shared by `conv_transpose3d.wgsl` and `conv_transpose3d_few.wgsl`.
    ConvTranspose3dParams in "conv_transpose3d.wgsl" { cin: u32, cout: u32, flags: u32, _pad0: u32, in_t: u32, in_h: u32, in_w: u32, _pad1: u32, s_t: u32, s_h: u32, s_w: u32, _pad2: u32 }
    ConvTranspose3dFewParams in "conv_transpose3d_few.wgsl" { cin: u32, cout: u32, flags: u32, _pad0: u32, in_t: u32, in_h: u32, in_w: u32, _pad1: u32, s_t: u32, s_h: u32, s_w: u32, _pad2: u32 }
    AffineReluParams in "affine_relu.wgsl" { positions: u32, total: u32, row_threads: u32, _pad: u32 }
    ChannelNormParams in "channel_norm.wgsl" { channels: u32, positions: u32, row_threads: u32, relu: u32, residual: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
    AxialAttentionParams in "axial_attention.wgsl" { channels: u32, n_head: u32, d_head: u32, positions: u32, t: u32, h: u32, w: u32, groups_x: u32 }
    CodebookArgminParams in "codebook_argmin.wgsl" { dim: u32, n_codes: u32, positions: u32, groups_x: u32, table_dim: u32, _pad0: u32, _pad1: u32, _pad2: u32 }
    CodebookLookupParams in "codebook_lookup.wgsl" { dim: u32, n_codes: u32, positions: u32, row_threads: u32 }
    ToRgba8Params in "to_rgba8.wgsl" { positions: u32, row_threads: u32, _pad0: u32, _pad1: u32 }
    RgbaToRgbParams in "rgba_to_rgb.wgsl" { frames: u32, height: u32, width: u32, row_words: u32, words: u32, row_threads: u32, _pad0: u32, _pad1: u32 }
    GemvParams in "gemv.wgsl" { d_in: u32, d_out: u32, flags: u32, residual_offset: u32, x_offset: u32, groups_x: u32, out_offset: u32, split_offset: u32 }
    EmbedParams in "embed.wgsl" { dim: u32, n_codes: u32, position: u32, _pad0: u32 }
    DecodeAttentionParams in "decode_attention.wgsl" { dim: u32, heads: u32, position: u32, n_positions: u32, sparse: u32, blocks_per_frame: u32, v_dim: u32, _pad0: u32 }
    SampleTokenParams in "sample_token.wgsl" { n_codes: u32, top_k: u32, position: u32, _pad0: u32, temperature: f32, _pad1: u32, _pad2: u32, _pad3: u32 }
}

impl From<ConvTranspose3dParams> for ConvTranspose3dFewParams {
    fn from(p: ConvTranspose3dParams) -> Self {
        bytemuck::cast(p)
    }
}

#[cfg(test)]
mod tests {
    /// The field names of a kernel's `struct Params { … }`, in order.
    fn wgsl_fields(source: &str) -> Vec<String> {
        let start = source.find("struct Params {").expect("every kernel declares `struct Params`") + "struct Params {".len();
        let body = &source[start..start + source[start..].find('}').unwrap()];
        body.split(',').filter_map(|f| f.split(':').next()).map(str::trim).filter(|n| !n.is_empty()).map(String::from).collect()
    }

    #[test]
    fn every_params_struct_matches_its_kernel() {
        for (file, source, fields) in super::ALL {
            assert_eq!(wgsl_fields(source), *fields, "{file}: the Rust params and the WGSL struct differ");
        }
        // and every kernel has one
        let kernels = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/shaders"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "wgsl"))
            .count();
        assert_eq!(super::ALL.len(), kernels);
    }
}
