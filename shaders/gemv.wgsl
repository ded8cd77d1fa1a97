// gemv.wgsl — one decoding step's Linear layer: out = W·x (+ bias) (then GeLU2) (+ residual),
// for a single input vector. The offsets let a step write its keys and values straight into row
// `position` of the KV cache and add row `position` of the position-embedding table. Bound by reading W once, so each output row gets a workgroup that
// streams its row with coalesced loads and reduces in workgroup memory.
//
// Bind group 0:
//   @binding(0) uniform      p        : Params
//   @binding(1) storage read x        : array<f32>   [d_in] (starting at x_offset)
//   @binding(2) storage read weight   : array<f32>   [d_out][d_in] (PyTorch Linear layout)
//   @binding(3) storage read bias     : array<f32>   [d_out] (read only when flags & 1)
//   @binding(4) storage read residual : array<f32>   read at residual_offset + row (when flags & 4)
//   @binding(5) storage rw   out      : array<f32>   written at out_offset + row
//
// GeLU2(v) = v·sigmoid(1.702·v), VideoGPT's activation, applied before the residual add.

struct Params {
    d_in: u32, d_out: u32, flags: u32, residual_offset: u32,
    x_offset: u32, groups_x: u32, out_offset: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const THREADS: u32 = 64u;
const FLAG_BIAS: u32 = 1u;     // the flags are set by the host (src/gpu/mod.rs)
const FLAG_GELU2: u32 = 2u;
const FLAG_RESIDUAL: u32 = 4u;

var<workgroup> partial: array<f32, THREADS>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row = wid.y * p.groups_x + wid.x;
    if (row >= p.d_out) {
        return; // uniform across the workgroup
    }
    let tid = lid.x;
    var acc = 0.0;
    for (var i = tid; i < p.d_in; i += THREADS) {
        acc = fma(weight[row * p.d_in + i], x[p.x_offset + i], acc);
    }
    partial[tid] = acc;
    workgroupBarrier();
    for (var step = THREADS / 2u; step > 0u; step /= 2u) {
        if (tid < step) {
            partial[tid] += partial[tid + step];
        }
        workgroupBarrier();
    }
    if (tid == 0u) {
        var v = partial[0];
        if ((p.flags & FLAG_BIAS) != 0u) {
            v += bias[row];
        }
        if ((p.flags & FLAG_GELU2) != 0u) {
            v = v / (1.0 + exp(-1.702 * v));
        }
        if ((p.flags & FLAG_RESIDUAL) != 0u) {
            v += residual[p.residual_offset + row];
        }
        out[p.out_offset + row] = v;
    }
}
