// to_rgba8.wgsl — two 3×T×H×W clips in [-0.5, 0.5] (a reconstruction's input and output) → one
// buffer of RGBA pixels, the first clip's then the second's, so that a chunk comes back to the
// host in one readback of bytes rather than as floats. Each byte is what `video::to_video` makes
// on the host: (clamp(v, −0.5, 0.5) + 0.5) · 255, truncated, 0 for NaN; alpha is 255.
//
// Bind group 0:
//   @binding(0) uniform      p     : Params
//   @binding(1) storage read a     : array<f32>   [3][positions]
//   @binding(2) storage read b     : array<f32>   [3][positions]
//   @binding(3) storage rw   out   : array<u32>   [2][positions] RGBA, red in the low byte
//
// One thread per pixel; the grid is 2-D so that large clips fit the 65535-group limit.

struct Params {
    positions: u32, row_threads: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<u32>;

fn byte(v: f32) -> u32 {
    if (v != v) {
        return 0u;
    }
    return u32((clamp(v, -0.5, 0.5) + 0.5) * 255.0);
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_threads + gid.x;
    let n = p.positions;
    if (i >= 2u * n) {
        return;
    }
    var rgb: vec3<f32>;
    if (i < n) {
        rgb = vec3<f32>(a[i], a[n + i], a[2u * n + i]);
    } else {
        let j = i - n;
        rgb = vec3<f32>(b[j], b[n + j], b[2u * n + j]);
    }
    out[i] = byte(rgb.x) | (byte(rgb.y) << 8u) | (byte(rgb.z) << 16u) | (255u << 24u);
}
