// channel_norm.wgsl — nn.LayerNorm over the channels of each position of a C×T×H×W tensor
// (eps 1e-5, biased variance), then an optional ReLU, then optionally relu(· + residual): the
// NormReLU layers and block outputs of the frame-conditioning ResNet. One thread per position;
// sums run in channel order as on the CPU.
//
// Bind group 0:
//   @binding(0) uniform      p        : Params
//   @binding(1) storage read x        : array<f32>   [C][positions]
//   @binding(2) storage read weight   : array<f32>   [C]
//   @binding(3) storage read bias     : array<f32>   [C]
//   @binding(4) storage read residual : array<f32>   [C][positions] (read only when p.residual)
//   @binding(5) storage rw   out      : array<f32>   [C][positions]

struct Params {
    channels: u32, positions: u32, row_threads: u32, relu: u32,
    residual: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let pos = gid.y * p.row_threads + gid.x;
    if (pos >= p.positions) {
        return;
    }
    let n = p.positions;
    var sum = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        sum += x[c * n + pos];
    }
    let mean = sum / f32(p.channels);
    var sq = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        let d = x[c * n + pos] - mean;
        sq += d * d;
    }
    let rstd = 1.0 / sqrt(sq / f32(p.channels) + 1e-5);
    for (var c = 0u; c < p.channels; c++) {
        var y = (x[c * n + pos] - mean) * rstd * weight[c] + bias[c];
        if (p.relu != 0u) {
            y = max(y, 0.0);
        }
        if (p.residual != 0u) {
            y = max(y + residual[c * n + pos], 0.0);
        }
        out[c * n + pos] = y;
    }
}
