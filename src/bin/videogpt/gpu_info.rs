//! `videogpt gpu`: the adapter wgpu picks here, its limits and features, and the peak FP32 rate
//! of the GPUs we know, which `bench --gpu-stats` divides the measured per-layer rates by. The
//! first lines of `scripts/gpu-check.sh`'s report.

use videogpt::{Gpu, Result};

/// Peak FP32 rate (non-tensor-core FMA, boost clock, GFLOP/s) of GPUs by a name their adapters
/// report, from the vendors' datasheets. Only a yardstick: the kernels use no tensor cores.
const PEAKS: &[(&str, f64, &str)] = &[
    ("H200", 66_900.0, "NVIDIA H200 SXM datasheet"),
    ("H100 PCIe", 51_200.0, "NVIDIA H100 PCIe datasheet"),
    ("H100", 66_900.0, "NVIDIA H100 SXM datasheet"),
    ("A100", 19_500.0, "NVIDIA A100 datasheet"),
    ("L4", 30_300.0, "NVIDIA L4 datasheet"),
    ("RTX 4090", 82_600.0, "NVIDIA RTX 4090 specifications"),
];

/// (peak GFLOP/s, source) for this adapter, where its name is one we know.
pub fn peak_gflops(g: &Gpu) -> Option<(f64, &'static str)> {
    let a = &g.adapter;
    let names = [&a.name, &a.driver_info];
    PEAKS.iter().find(|(key, ..)| names.iter().any(|n| n.contains(key))).map(|&(_, peak, source)| (peak, source))
}

pub fn run() -> Result<()> {
    let g = pollster::block_on(Gpu::new())?;
    let a = &g.adapter;
    let l = g.limits();
    println!("adapter          {}", g.describe());
    println!("device type      {:?}", a.device_type);
    println!("vendor, device   {:#06x}, {:#06x}", a.vendor, a.device);
    println!("driver           {} {}", a.driver, a.driver_info);
    println!("backend          {:?}", a.backend);
    println!("timestamps       {}", if g.has_timestamps() { "yes (bench --gpu-stats times every dispatch)" } else { "no" });
    println!("features         {:?}", g.features());
    println!("max buffer       {} MiB (storage binding {} MiB)", l.max_buffer_size >> 20, l.max_storage_buffer_binding_size >> 20);
    println!("workgroup        {} invocations, {} bytes shared", l.max_compute_invocations_per_workgroup, l.max_compute_workgroup_storage_size);
    println!("workgroups/dim   {}", l.max_compute_workgroups_per_dimension);
    match peak_gflops(&g) {
        Some((peak, source)) => println!("FP32 peak        {:.1} TFLOP/s ({source})", peak / 1e3),
        None => println!("FP32 peak        unknown for this adapter (add it to src/bin/videogpt/gpu_info.rs)"),
    }
    Ok(())
}
