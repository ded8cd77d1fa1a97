//! The register tile: one microkernel per instruction set, chosen once at run time (or named by
//! `VIDEOGPT_CPU_KERNEL`).

use super::portable::portable;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
use super::wasm;
#[cfg(target_arch = "x86_64")]
use super::x86;

/// The register tile of one instruction set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Microkernel {
    /// x86-64 with AVX-512F: 12 rows × 32 columns (24 of the 32 zmm registers accumulate).
    Avx512,
    /// x86-64 with AVX2 and FMA: 6 rows × 16 columns.
    Avx2,
    /// wasm32 built with `simd128`: 6 rows × 8 columns, multiply then add (no FMA in core wasm SIMD).
    Simd128,
    /// Anything else: 4 rows × 8 columns in plain Rust.
    Portable,
}

impl Microkernel {
    /// The fastest microkernel this processor runs.
    pub fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Microkernel::Avx512;
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Microkernel::Avx2;
            }
        }
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        {
            return Microkernel::Simd128;
        }
        #[allow(unreachable_code)]
        Microkernel::Portable
    }

    /// Whether this processor can run it.
    pub fn is_supported(self) -> bool {
        match self {
            Microkernel::Portable => true,
            #[cfg(target_arch = "x86_64")]
            Microkernel::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Microkernel::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            Microkernel::Simd128 => cfg!(all(target_arch = "wasm32", target_feature = "simd128")),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// (rows, columns) of its register tile.
    pub(super) fn tile(self) -> (usize, usize) {
        match self {
            Microkernel::Avx512 => (12, 32),
            Microkernel::Avx2 => (6, 16),
            Microkernel::Simd128 => (6, 8),
            Microkernel::Portable => (4, 8),
        }
    }

    /// `tile[MR×NR] = Σ_p a[p][MR] ⊗ b[p][NR]` over `kc` packed steps.
    ///
    /// # Safety
    /// `a` holds `kc·MR` floats, `b` `kc·NR`, `tile` `MR·NR`, and the processor supports `self`.
    pub(super) unsafe fn run(self, kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Microkernel::Avx512 => x86::avx512_nx32::<12>(kc, a, b, tile),
            #[cfg(target_arch = "x86_64")]
            Microkernel::Avx2 => x86::avx2_6x16(kc, a, b, tile),
            #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
            Microkernel::Simd128 => wasm::simd128_6x8(kc, a, b, tile),
            Microkernel::Portable => portable::<4, 8>(kc, a, b, tile),
            #[allow(unreachable_patterns)]
            _ => unreachable!("{self:?} is not compiled for this target"),
        }
    }
}

/// The microkernel [`sgemm`] and the GEMVs use, found once: [`Microkernel::best`], unless
/// `VIDEOGPT_CPU_KERNEL` names another this processor runs (`avx512`, `avx2`, `portable`): the
/// tests run the PyTorch goldens through each. The CLI checks the variable with
/// [`Microkernel::from_env`] before any work, so a typo is an error there, not a silent fallback;
/// a library caller that skipped that check gets a panic that says the same.
pub(crate) fn best_kernel() -> Microkernel {
    static BEST: std::sync::OnceLock<Microkernel> = std::sync::OnceLock::new();
    *BEST.get_or_init(|| match Microkernel::from_env() {
        Ok(named) => named.unwrap_or_else(Microkernel::best),
        Err(e) => panic!("{e}"),
    })
}

impl Microkernel {
    const NAMED: [(&'static str, Microkernel); 4] =
        [("avx512", Microkernel::Avx512), ("avx2", Microkernel::Avx2), ("simd128", Microkernel::Simd128), ("portable", Microkernel::Portable)];

    /// Its name, as `VIDEOGPT_CPU_KERNEL` spells it.
    pub fn name(self) -> &'static str {
        Self::NAMED.iter().find(|(_, k)| *k == self).map_or("portable", |(n, _)| n)
    }

    /// The kernels this processor runs, fastest first.
    pub fn supported() -> Vec<Microkernel> {
        Self::NAMED.iter().map(|&(_, k)| k).filter(|k| k.is_supported()).collect()
    }

    /// The kernel `VIDEOGPT_CPU_KERNEL` asks for: `None` when it is unset or empty; an error
    /// naming the variable and this processor's kernels when it names none of them.
    pub fn from_env() -> crate::Result<Option<Microkernel>> {
        let Ok(value) = std::env::var("VIDEOGPT_CPU_KERNEL") else { return Ok(None) };
        if value.is_empty() {
            return Ok(None);
        }
        let here = || Self::supported().iter().map(|k| k.name()).collect::<Vec<_>>().join(", ");
        match Self::NAMED.iter().find(|(n, _)| *n == value) {
            Some(&(_, k)) if k.is_supported() => Ok(Some(k)),
            Some(_) => {
                Err(crate::Error::Input(format!("VIDEOGPT_CPU_KERNEL={value}: this processor cannot run that kernel (this processor runs: {})", here())))
            }
            None => Err(crate::Error::Input(format!("VIDEOGPT_CPU_KERNEL={value} names no kernel (this processor runs: {})", here()))),
        }
    }

    /// The kernel the CPU path uses in this process.
    pub fn in_use() -> Microkernel {
        best_kernel()
    }
}
