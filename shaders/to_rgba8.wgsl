// to_rgba8.wgsl — two 3×T×H×W clips in [-0.5, 0.5] (a reconstruction's input and output) → one
// buffer of RGBA pixels, the first clip's then the second's, so that a chunk comes back to the
// host in one readback of bytes rather than as floats. The bytes are what `video.rs` makes on the
// host (lib/bytes.wgsl): the input's rounded (`input_to_video`), the output's truncated as
// VideoGPT writes them (`to_video`); alpha is 255.
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

#include "lib/bytes.wgsl"

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_threads + gid.x;
    let n = p.positions;
    if (i >= 2u * n) {
        return;
    }
    var rgb: vec3<u32>;
    if (i < n) {
        rgb = vec3<u32>(input_byte(a[i]), input_byte(a[n + i]), input_byte(a[2u * n + i]));
    } else {
        let j = i - n;
        rgb = vec3<u32>(output_byte(b[j]), output_byte(b[n + j]), output_byte(b[2u * n + j]));
    }
    out[i] = rgb.x | (rgb.y << 8u) | (rgb.z << 16u) | (255u << 24u);
}
