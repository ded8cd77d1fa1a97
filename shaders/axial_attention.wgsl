// axial_attention.wgsl — VideoGPT's AxialBlock attention core: for each of the axes W, H, T,
// full non-causal softmax(q·kᵀ/√d)·v along that axis, every other axis folded into the batch.
//
// Bind group 0:
//   @binding(0) uniform      p   : Params
//   @binding(1) storage read qkv : array<f32>   [9C][positions]: for axis a in (W, H, T), the
//                                                 channels 9a.. hold q, then k, then v (C each)
//   @binding(2) storage rw   out : array<f32>   [3C][positions]: axis a's output in channels a·C..
//
// One workgroup of 64 threads per (query position, head, axis): threads share the scores of the
// query against the `len` keys of its line, reduce max and sum, then each thread produces some of
// the d_head outputs.

struct Params {
    channels: u32, n_head: u32, d_head: u32, positions: u32,
    t: u32, h: u32, w: u32, groups_x: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> qkv: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;

const THREADS: u32 = 64u;
const MAX_LEN: u32 = 512u;    // longest axis: set and checked by the host (src/gpu/mod.rs)
const MAX_D_HEAD: u32 = 512u; // set and checked by the host

var<workgroup> q: array<f32, MAX_D_HEAD>;
var<workgroup> scores: array<f32, MAX_LEN>;
var<workgroup> partial: array<f32, THREADS>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let pos = wid.y * p.groups_x + wid.x;
    if (pos >= p.positions) {
        return; // uniform across the workgroup
    }
    let head = wid.z % p.n_head;
    let axis = wid.z / p.n_head;
    var len = p.w;
    var stride = 1u;
    if (axis == 1u) {
        len = p.h;
        stride = p.w;
    } else if (axis == 2u) {
        len = p.t;
        stride = p.h * p.w;
    }
    let base = pos - ((pos / stride) % len) * stride;
    let c = p.channels;
    let q_ch = (3u * axis) * c + head * p.d_head;
    let k_ch = q_ch + c;
    let v_ch = q_ch + 2u * c;
    let tid = lid.x;

    for (var d = tid; d < p.d_head; d += THREADS) {
        q[d] = qkv[(q_ch + d) * p.positions + pos];
    }
    workgroupBarrier();

    let scale = sqrt(f32(p.d_head));
    var local_max = -3.4e38;
    for (var j = tid; j < len; j += THREADS) {
        let key = base + j * stride;
        var s = 0.0;
        for (var d = 0u; d < p.d_head; d++) {
            s = fma(q[d], qkv[(k_ch + d) * p.positions + key], s);
        }
        s = s / scale;
        scores[j] = s;
        local_max = max(local_max, s);
    }
    partial[tid] = local_max;
    workgroupBarrier();
    for (var step = THREADS / 2u; step > 0u; step /= 2u) {
        if (tid < step) {
            partial[tid] = max(partial[tid], partial[tid + step]);
        }
        workgroupBarrier();
    }
    let row_max = partial[0];
    workgroupBarrier();

    var local_sum = 0.0;
    for (var j = tid; j < len; j += THREADS) {
        let e = exp(scores[j] - row_max);
        scores[j] = e;
        local_sum += e;
    }
    partial[tid] = local_sum;
    workgroupBarrier();
    for (var step = THREADS / 2u; step > 0u; step /= 2u) {
        if (tid < step) {
            partial[tid] += partial[tid + step];
        }
        workgroupBarrier();
    }
    let row_sum = partial[0];

    for (var d = tid; d < p.d_head; d += THREADS) {
        var acc = 0.0;
        for (var j = 0u; j < len; j++) {
            acc = fma(scores[j] / row_sum, qkv[(v_ch + d) * p.positions + base + j * stride], acc);
        }
        out[(axis * c + head * p.d_head + d) * p.positions + pos] = acc;
    }
}
