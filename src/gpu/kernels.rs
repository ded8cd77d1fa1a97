//! The kernel registry: one compute pipeline per `shaders/NAME.wgsl`, compiled the first time it
//! runs. Before compilation a kernel's `#include "lib/…"` lines are replaced by the shared helpers
//! in `shaders/lib/` (each once, in the order first asked for) and its `const` limits and flags are
//! set to the host's values, so the native and the wasm builds compile the same composed source.

use std::cell::OnceCell;

use super::*;

/// The shared helpers a kernel may `#include`, by path under `shaders/`.
const LIBRARY: &[(&str, &str)] = &[
    ("lib/bytes.wgsl", include_str!("../../shaders/lib/bytes.wgsl")),
    ("lib/conv_input.wgsl", include_str!("../../shaders/lib/conv_input.wgsl")),
    ("lib/gemm_tile.wgsl", include_str!("../../shaders/lib/gemm_tile.wgsl")),
    ("lib/parity_class.wgsl", include_str!("../../shaders/lib/parity_class.wgsl")),
];

/// `source` with every `#include "PATH"` line replaced by that helper's text (itself resolved),
/// each helper once. An unknown path is a bug in the shaders: it stops the runtime when the kernel
/// is first built, and the test that composes every kernel.
fn resolve_includes(name: &str, source: &str, included: &mut Vec<&'static str>) -> String {
    let mut out = String::with_capacity(source.len());
    for line in source.lines() {
        let Some(rest) = line.trim().strip_prefix("#include") else {
            out.push_str(line);
            out.push('\n');
            continue;
        };
        let path = rest.trim().trim_matches('"');
        let Some(&(path, text)) = LIBRARY.iter().find(|(p, _)| *p == path) else {
            panic!("{name}: `#include \"{path}\"` names no file of shaders/lib/ known to src/gpu/kernels.rs")
        };
        if !included.contains(&path) {
            included.push(path);
            out.push_str(&format!("// ---- {path} ----\n"));
            out.push_str(&resolve_includes(path, text, included));
            out.push_str(&format!("// ---- end of {path} ----\n"));
        }
    }
    out
}

/// A kernel's source as the GPU compiles it: includes resolved, then the host's constants set.
fn compose(name: &str, source: &str, constants: &[(&str, u32)]) -> String {
    with_constants(name, &resolve_includes(name, source, &mut Vec::new()), constants)
}

/// The kernel's source with its `const NAME: u32 = …;` declarations set to the host's values, so
/// that every limit and flag the host checks or sets is defined once, here. A declaration the
/// kernel lacks is a bug in this table: it stops the runtime at start-up, in every test.
fn with_constants(name: &str, source: &str, constants: &[(&str, u32)]) -> String {
    let mut out = source.to_string();
    for (constant, value) in constants {
        let prefix = format!("const {constant}: u32 = ");
        let Some(start) = out.find(&prefix) else { panic!("{name}.wgsl declares no `{prefix}…;`") };
        let end = start + out[start..].find(';').expect("a WGSL declaration ends with ;");
        out.replace_range(start..end, &format!("{prefix}{value}u"));
    }
    out
}

pub(super) struct Kernel {
    pub(super) name: &'static str,
    pub(super) pipeline: wgpu::ComputePipeline,
    pub(super) layout: wgpu::BindGroupLayout,
}

/// A GEMM-shaped kernel built with one tile shape (see the RM/RN note in `shaders/conv3d.wgsl`).
pub(super) struct TiledKernel {
    pub(super) kernel: Kernel,
    pub(super) tile_m: usize,
    pub(super) tile_n: usize,
}

/// The default 64×64-tile pipeline, a 32×64 one for layers with at most 32 output channels (the
/// residual blocks' C/2 convs) and a 16×128 one for at most 16, so that no tile is mostly idle.
pub(super) struct TileVariants {
    wide: TiledKernel,
    medium: TiledKernel,
    narrow: TiledKernel,
}

/// The tile shapes built of a GEMM-shaped kernel, as (RM, RN): 64×64, 32×64 and 16×128 tiles.
const TILE_SHAPES: [(u32, u32); 3] = [(4, 4), (2, 4), (1, 8)];

/// `source` with its tile shape declaration set to RM × RN.
fn with_tile_shape(name: &str, source: &str, (rm, rn): (u32, u32)) -> String {
    const DEFAULT: &str = "const RM: u32 = 4u;\nconst RN: u32 = 4u;";
    assert!(source.contains(DEFAULT), "{name}.wgsl must declare its tile shape as RM/RN");
    source.replace(DEFAULT, &format!("const RM: u32 = {rm}u;\nconst RN: u32 = {rn}u;"))
}

impl TileVariants {
    fn new(device: &wgpu::Device, name: &'static str, source: &str) -> Self {
        let [wide, medium, narrow] = TILE_SHAPES.map(|(rm, rn)| TiledKernel {
            kernel: kernel(device, name, &with_tile_shape(name, source, (rm, rn))),
            tile_m: 16 * rm as usize,
            tile_n: 16 * rn as usize,
        });
        TileVariants { wide, medium, narrow }
    }

    pub(super) fn for_channels(&self, cout: usize) -> &TiledKernel {
        [&self.narrow, &self.medium].into_iter().find(|k| cout <= k.tile_m).unwrap_or(&self.wide)
    }
}

/// One pipeline per kernel, each compiled the first time it runs: a page that only reconstructs
/// never compiles the prior's kernels, and start-up compiles none (shader compilation is slow on
/// software adapters).
pub(super) struct Kernels {
    device: wgpu::Device,
    conv3d: OnceCell<TileVariants>,
    conv_transpose3d: OnceCell<TileVariants>,
    conv_transpose3d_few: OnceCell<Kernel>,
    affine_relu: OnceCell<Kernel>,
    axial_attention: OnceCell<Kernel>,
    codebook_argmin: OnceCell<Kernel>,
    codebook_lookup: OnceCell<Kernel>,
    gemv: OnceCell<Kernel>,
    embed: OnceCell<Kernel>,
    decode_attention: OnceCell<Kernel>,
    sample_token: OnceCell<Kernel>,
    preprocess: OnceCell<Kernel>,
    rgba_to_rgb: OnceCell<Kernel>,
    channel_norm: OnceCell<Kernel>,
    to_rgba8: OnceCell<Kernel>,
}

/// `kernels.NAME()`: the pipeline, compiled from `shaders/NAME.wgsl` (includes resolved, the
/// host's constants set) on first use; and, for the tests, every kernel's composed source.
macro_rules! lazy_kernels {
    ($($name:ident: $ty:ident $(with $consts:expr)?;)*) => {
        impl Kernels {
            pub(super) fn new(device: wgpu::Device) -> Self {
                Kernels { device, $($name: OnceCell::new(),)* }
            }
            $(
                pub(super) fn $name(&self) -> &$ty {
                    self.$name.get_or_init(|| $ty::build(&self.device, stringify!($name), &composed_source(stringify!($name))))
                }
            )*
        }

        /// `shaders/NAME.wgsl` with its includes resolved and the host's constants set.
        fn composed_source(name: &str) -> String {
            match name {
                $(stringify!($name) => {
                    #[allow(unused_mut, unused_assignments)]
                    let mut constants: &[(&str, u32)] = &[];
                    $(constants = $consts;)?
                    compose(name, include_str!(concat!("../../shaders/", stringify!($name), ".wgsl")), constants)
                })*
                _ => unreachable!("{name} is not a kernel of lazy_kernels!"),
            }
        }

        /// (kernel, source as compiled) of every pipeline the runtime can build, tile variants included.
        #[cfg(test)]
        fn all_sources() -> Vec<(String, String)> {
            [$($ty::sources_built(stringify!($name), composed_source(stringify!($name)))),*].concat()
        }
    };
}

lazy_kernels! {
    conv3d: TileVariants with &[("FLAG_RELU", CONV_RELU), ("FLAG_RESIDUAL", CONV_RESIDUAL), ("FLAG_INPUT_NORM", CONV_INPUT_NORM)];
    conv_transpose3d: TileVariants with &[("FLAG_RELU", CONV_RELU), ("FLAG_INPUT_NORM", CONV_INPUT_NORM)];
    conv_transpose3d_few: Kernel with &[("MAX_COUT", FEW_CHANNELS as u32), ("FLAG_RELU", CONV_RELU), ("FLAG_INPUT_NORM", CONV_INPUT_NORM)];
    affine_relu: Kernel;
    axial_attention: Kernel with &[("MAX_LEN", ATTENTION_MAX_LEN as u32), ("MAX_D_HEAD", ATTENTION_MAX_D_HEAD as u32)];
    codebook_argmin: Kernel with &[("MAX_DIM", ARGMIN_MAX_DIM as u32)];
    codebook_lookup: Kernel;
    gemv: Kernel with &[("FLAG_BIAS", GEMV_BIAS), ("FLAG_GELU2", GEMV_GELU2), ("FLAG_RESIDUAL", GEMV_RESIDUAL), ("FLAG_NORM", GEMV_NORM), ("FLAG_SPLIT3", GEMV_SPLIT3), ("FLAG_F16", GEMV_F16)];
    embed: Kernel;
    decode_attention: Kernel;
    sample_token: Kernel;
    preprocess: Kernel;
    rgba_to_rgb: Kernel;
    channel_norm: Kernel;
    to_rgba8: Kernel;
}

impl Kernel {
    fn build(device: &wgpu::Device, name: &'static str, source: &str) -> Self {
        kernel(device, name, source)
    }

    /// (name, source) of the pipeline `build` makes of `source`.
    #[cfg(test)]
    fn sources_built(name: &str, source: String) -> Vec<(String, String)> {
        vec![(name.to_string(), source)]
    }
}

impl TileVariants {
    fn build(device: &wgpu::Device, name: &'static str, source: &str) -> Self {
        TileVariants::new(device, name, source)
    }

    /// (name and tile shape, source) of each pipeline `build` makes of `source`.
    #[cfg(test)]
    fn sources_built(name: &str, source: String) -> Vec<(String, String)> {
        TILE_SHAPES.iter().map(|&shape| (format!("{name} {shape:?}"), with_tile_shape(name, &source, shape))).collect()
    }
}

fn kernel(device: &wgpu::Device, name: &'static str, source: &str) -> Kernel {
    let module = device.create_shader_module(wgpu::ShaderModuleDescriptor { label: Some(name), source: wgpu::ShaderSource::Wgsl(source.into()) });
    let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(name),
        layout: None,
        module: &module,
        entry_point: Some("main"),
        compilation_options: Default::default(),
        cache: None,
    });
    let layout = pipeline.get_bind_group_layout(0);
    Kernel { name, pipeline, layout }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pipeline's source as the GPU gets it (each tile shape too) parses and validates with
    /// naga, the WGSL front end wgpu compiles with natively; the wasm build embeds the same files
    /// and composes them with the same code.
    #[test]
    fn every_composed_kernel_validates() {
        let all = all_sources();
        assert_eq!(all.len(), 15 + 2 * (TILE_SHAPES.len() - 1), "a kernel of shaders/ is missing from lazy_kernels!");
        for (name, source) in all {
            assert!(!source.contains("#include"), "{name}: an include was left unresolved");
            let module = naga::front::wgsl::parse_str(&source).unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(&source)));
            naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::default())
                .validate(&module)
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
        }
    }

    /// No WGSL helper is written twice: a function name (other than `main`) is defined in one file
    /// of `shaders/` or `shaders/lib/` only; and every file of `shaders/lib/` is in the library
    /// and included by some kernel.
    #[test]
    fn every_helper_is_written_once() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
        let mut files: Vec<_> = std::fs::read_dir(&root).unwrap().chain(std::fs::read_dir(root.join("lib")).unwrap()).map(|e| e.unwrap().path()).collect();
        files.retain(|p| p.extension().is_some_and(|e| e == "wgsl"));
        let mut defined = std::collections::HashMap::new();
        for path in &files {
            let source = std::fs::read_to_string(path).unwrap();
            for line in source.lines() {
                let Some(rest) = line.trim_start().strip_prefix("fn ") else { continue };
                let name = rest.split('(').next().unwrap().trim().to_string();
                if name == "main" {
                    continue;
                }
                if let Some(first) = defined.insert(name.clone(), path.clone()) {
                    panic!("fn {name} is written in both {} and {}: move it to shaders/lib/", first.display(), path.display());
                }
            }
        }
        let lib: Vec<_> = files.iter().filter(|p| p.parent().unwrap().ends_with("lib")).collect();
        assert_eq!(lib.len(), LIBRARY.len(), "shaders/lib/ and LIBRARY differ");
        let kernels: String = files.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
        for (path, _) in LIBRARY {
            assert!(kernels.contains(&format!("#include \"{path}\"")), "{path} is included by no kernel");
        }
    }

    #[test]
    fn includes_resolve_once_each_and_unknown_ones_stop() {
        let twice = "#include \"lib/bytes.wgsl\"\n#include \"lib/bytes.wgsl\"\nfn main() {}\n";
        let composed = resolve_includes("t", twice, &mut Vec::new());
        assert_eq!(composed.matches("fn output_byte").count(), 1);
        assert!(std::panic::catch_unwind(|| resolve_includes("t", "#include \"lib/none.wgsl\"", &mut Vec::new())).is_err());
    }
}
