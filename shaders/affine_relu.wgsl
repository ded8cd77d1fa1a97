// affine_relu.wgsl — eval-mode BatchNorm3d followed by ReLU: out = max(x·scale[c] + shift[c], 0).
//
// Bind group 0:
//   @binding(0) uniform      p     : Params
//   @binding(1) storage read x     : array<f32>   [channels][positions]
//   @binding(2) storage read scale : array<f32>   [channels]
//   @binding(3) storage read shift : array<f32>   [channels]
//   @binding(4) storage rw   out   : array<f32>   [channels][positions]
//
// One thread per element; the grid is 2-D so that large volumes fit the 65535-group limit.

struct Params {
    positions: u32, total: u32, row_threads: u32, _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> shift: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_threads + gid.x;
    if (i >= p.total) {
        return;
    }
    let c = i / p.positions;
    out[i] = max(x[i] * scale[c] + shift[c], 0.0);
}
