// gemv.wgsl — one decoding step's Linear layer: out = W·x (+ bias) (then GeLU2) (+ residual),
// for a single input vector, optionally with VideoGPT's LayerNorm of x fused in front and with
// its rows split over three outputs (q, k, v as one product). The offsets let a step write its
// keys and values straight into row `position` of the KV caches and add row `position` of the
// position-embedding table. Bound by reading W once, so each output row gets a workgroup that
// streams its row with coalesced loads and reduces in workgroup memory.
//
// Bind group 0:
//   @binding(0) uniform      p        : Params
//   @binding(1) storage read x        : array<f32>   [d_in] (starting at x_offset)
//   @binding(2) storage read weight   : array<u32>   [d_out][d_in] (PyTorch Linear layout): f32
//                                                 bits, or with FLAG_F16 f16s two to a word
//                                                 (element 2w in word w's low half)
//   @binding(3) storage read bias     : array<f32>   [d_out] (read only when flags & FLAG_BIAS)
//   @binding(4) storage read residual : array<f32>   read at residual_offset + row (FLAG_RESIDUAL)
//   @binding(5) storage rw   out      : array<f32>   written at out_offset + row
//   @binding(6) storage read norm     : array<f32>   [2][d_in] gain then shift (FLAG_NORM)
//   @binding(7) storage rw   out2     : array<f32>   with FLAG_SPLIT3 the rows are three equal
//   @binding(8) storage rw   out3     : array<f32>   parts: out, then out2 and out3 at split_offset
//
// FLAG_F16: the weights are the file's f16 values, widened to f32 as they are loaded: the same
// products and the same order of summation as the f32 layout of the same values, from half the
// bytes (a decoding step is bound by reading the weights once).
// GeLU2(v) = v·sigmoid(1.702·v), VideoGPT's activation, applied before the residual add.
// FLAG_NORM: x is replaced by (x − μ)·(rsqrt(var) + 1e−5)·g + b (spec §3.6: the epsilon sits on the
// reciprocal square root), each workgroup computing μ and var itself in the same order as a
// separate LayerNorm pass would: the one vector is short, and a dispatch costs more.

struct Params {
    d_in: u32, d_out: u32, flags: u32, residual_offset: u32,
    x_offset: u32, groups_x: u32, out_offset: u32, split_offset: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<u32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> norm: array<f32>;
@group(0) @binding(7) var<storage, read_write> out2: array<f32>;
@group(0) @binding(8) var<storage, read_write> out3: array<f32>;

const THREADS: u32 = 64u;
const FLAG_BIAS: u32 = 1u;     // the flags are set by the host (src/gpu/mod.rs)
const FLAG_GELU2: u32 = 2u;
const FLAG_RESIDUAL: u32 = 4u;
const FLAG_NORM: u32 = 8u;
const FLAG_SPLIT3: u32 = 16u;
const FLAG_F16: u32 = 32u;

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

// the f16 with bits `h` as an f32, exactly (by its bits rather than with unpack2x16float, which
// some backends gate behind a capability)
fn widen_f16(h: u32) -> f32 {
    let sign = (h & 0x8000u) << 16u;
    let e = (h >> 10u) & 0x1fu;
    let m = h & 0x3ffu;
    if (e == 0u) { // zero or subnormal: m · 2⁻²⁴, exact in f32
        return bitcast<f32>(sign | bitcast<u32>(f32(m) * 5.9604644775390625e-8));
    }
    if (e == 31u) { // infinity or NaN
        return bitcast<f32>(sign | 0x7f800000u | (m << 13u));
    }
    return bitcast<f32>(sign | ((e + 112u) << 23u) | (m << 13u));
}

// weight element `at` of [d_out][d_in]
fn weight_at(at: u32) -> f32 {
    if ((p.flags & FLAG_F16) != 0u) {
        return widen_f16((weight[at >> 1u] >> ((at & 1u) * 16u)) & 0xffffu);
    }
    return bitcast<f32>(weight[at]);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let row = wid.y * p.groups_x + wid.x;
    if (row >= p.d_out) {
        return; // uniform across the workgroup
    }
    let tid = lid.x;
    let normed = (p.flags & FLAG_NORM) != 0u;
    var mu = 0.0;
    var scale = 1.0;
    if (normed) {
        var s = 0.0;
        for (var i = tid; i < p.d_in; i += THREADS) {
            s += x[p.x_offset + i];
        }
        mu = reduce_sum(tid, s) / f32(p.d_in);
        var sq = 0.0;
        for (var i = tid; i < p.d_in; i += THREADS) {
            let c = x[p.x_offset + i] - mu;
            sq += c * c;
        }
        scale = 1.0 / sqrt(reduce_sum(tid, sq) / f32(p.d_in)) + 1e-5;
    }
    var acc = 0.0;
    for (var i = tid; i < p.d_in; i += THREADS) {
        var xi = x[p.x_offset + i];
        if (normed) {
            xi = (xi - mu) * scale * norm[i] + norm[p.d_in + i];
        }
        acc = fma(weight_at(row * p.d_in + i), xi, acc);
    }
    let total = reduce_sum(tid, acc);
    if (tid == 0u) {
        var v = total;
        if ((p.flags & FLAG_BIAS) != 0u) {
            v += bias[row];
        }
        if ((p.flags & FLAG_GELU2) != 0u) {
            v = v / (1.0 + exp(-1.702 * v));
        }
        if ((p.flags & FLAG_RESIDUAL) != 0u) {
            v += residual[p.residual_offset + row];
        }
        if ((p.flags & FLAG_SPLIT3) != 0u) {
            let part = p.d_out / 3u;
            if (row < part) {
                out[p.out_offset + row] = v;
            } else if (row < 2u * part) {
                out2[p.split_offset + row - part] = v;
            } else {
                out3[p.split_offset + row - 2u * part] = v;
            }
        } else {
            out[p.out_offset + row] = v;
        }
    }
}
