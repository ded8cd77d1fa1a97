// layer_norm.wgsl — VideoGPT's GPT LayerNorm of one vector: (x − μ)·(rsqrt(var) + 1e−5)·g + b.
// The epsilon sits on the reciprocal square root, not under it (spec §3.6). For class-conditional
// models the host uploads g = 1 + W_g·c and b = W_b·c for the sample's class.
//
// Bind group 0:
//   @binding(0) uniform      p   : Params
//   @binding(1) storage read x   : array<f32>   [dim]
//   @binding(2) storage read g   : array<f32>   [dim]
//   @binding(3) storage read b   : array<f32>   [dim]
//   @binding(4) storage rw   out : array<f32>   [dim]

struct Params {
    dim: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read> b: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

const THREADS: u32 = 64u;

var<workgroup> partial: array<f32, THREADS>;

fn reduce_sum(tid: u32, v: f32) -> f32 {
    partial[tid] = v;
    workgroupBarrier();
    for (var step = THREADS / 2u; step > 0u; step /= 2u) {
        if (tid < step) {
            partial[tid] += partial[tid + step];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    let tid = lid.x;
    var s = 0.0;
    for (var i = tid; i < p.dim; i += THREADS) {
        s += x[i];
    }
    let mu = reduce_sum(tid, s) / f32(p.dim);
    var sq = 0.0;
    for (var i = tid; i < p.dim; i += THREADS) {
        let c = x[i] - mu;
        sq += c * c;
    }
    let var_ = reduce_sum(tid, sq) / f32(p.dim);
    let scale = 1.0 / sqrt(var_) + 1e-5;
    for (var i = tid; i < p.dim; i += THREADS) {
        out[i] = (x[i] - mu) * scale * g[i] + b[i];
    }
}
