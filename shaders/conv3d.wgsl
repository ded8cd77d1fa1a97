// conv3d.wgsl — VideoGPT's SamePadConv3d as an implicit GEMM, with fused bias, residual add and
// ReLU, and optionally the BatchNorm + ReLU that precedes it applied to its input as it is loaded.
//
// Bind group 0:
//   @binding(0) uniform      p        : Params
//   @binding(1) storage read x        : array<f32>   input,  [cin][in_t][in_h][in_w]
//   @binding(2) storage read weight   : array<f32>   [cout][cin][k_t][k_h][k_w] (PyTorch layout)
//   @binding(3) storage read bias     : array<f32>   [cout]
//   @binding(4) storage read residual : array<f32>   [cout][n] (read only when flags & 2)
//   @binding(5) storage rw   out      : array<f32>   [cout][out_t][out_h][out_w]
//   @binding(6) storage read scale    : array<f32>   [cin] (read only when flags & 4)
//   @binding(7) storage read shift    : array<f32>   [cin]
//
// out[m][n] = bias[m] + Σ_k weight[m][k] · X[k][n] (+ residual[m][n]) (then ReLU), where
//   k = (ci, kt, kh, kw) in weight order and n = (ot, oh, ow), and
//   X[k][n] = x[ci][ot·s_t + kt − pad_t][oh·s_h + kh − pad_h][ow·s_w + kw − pad_w], zero outside:
//   the "same" padding is never materialised. With FLAG_INPUT_NORM, x stands for
//   max(x·scale[ci] + shift[ci], 0) (eval-mode BatchNorm and ReLU, as affine_relu.wgsl computes
//   it) and the padding zeros stay zeros: PyTorch pads the normalised input.
// Each 16×16 workgroup computes a TILE_M×TILE_N tile of out, each thread RM×RN of it, staging
// 16-deep slices of weight and X in workgroup memory.

struct Params {
    cin: u32, cout: u32, flags: u32, _pad0: u32,
    in_t: u32, in_h: u32, in_w: u32, _pad1: u32,
    out_t: u32, out_h: u32, out_w: u32, _pad2: u32,
    k_t: u32, k_h: u32, k_w: u32, _pad3: u32,
    s_t: u32, s_h: u32, s_w: u32, _pad4: u32,
    pad_t: u32, pad_h: u32, pad_w: u32, _pad5: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read> residual: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> scale: array<f32>;
@group(0) @binding(7) var<storage, read> shift: array<f32>;

#include "lib/gemm_tile.wgsl"
#include "lib/conv_input.wgsl"

const FLAG_RELU: u32 = 1u;     // the flags are set by the host (src/gpu/mod.rs)
const FLAG_RESIDUAL: u32 = 2u;
const FLAG_INPUT_NORM: u32 = 4u;

// X[k][n] of the implicit im2col matrix; `origin` is where output n's window starts in the input
// (its coordinates times the stride, minus the front padding), computed once per thread.
fn column(k: u32, origin: vec3<i32>) -> f32 {
    let kvol = p.k_t * p.k_h * p.k_w;
    let ci = k / kvol;
    let r = k % kvol;
    let tap = vec3<u32>(r / (p.k_h * p.k_w), (r / p.k_w) % p.k_h, r % p.k_w);
    let at = origin + vec3<i32>(tap);
    if (!in_input(at)) {
        return 0.0;
    }
    return conv_input(ci, vec3<u32>(at));
}

// Input origin of output position n (valid for n < out_t·out_h·out_w).
fn window_origin(n: u32) -> vec3<i32> {
    let o = vec3<u32>(n / (p.out_h * p.out_w), (n / p.out_w) % p.out_h, n % p.out_w);
    return vec3<i32>(o * vec3<u32>(p.s_t, p.s_h, p.s_w)) - vec3<i32>(vec3<u32>(p.pad_t, p.pad_h, p.pad_w));
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let n_out = p.out_t * p.out_h * p.out_w;
    let k_len = p.cin * p.k_t * p.k_h * p.k_w;
    let m0 = wid.y * TILE_M;
    let n0 = wid.x * TILE_N;
    let tid = lid.y * 16u + lid.x;

    // the positions this thread stages never change across the K loop: decompose them once
    var origins: array<vec3<i32>, RN>;
    for (var i = 0u; i < RN; i++) {
        origins[i] = window_origin(n0 + (tid + i * 256u) % TILE_N);
    }

    var acc: array<f32, RM * RN>;
    for (var k0 = 0u; k0 < k_len; k0 += TILE_K) {
        for (var i = 0u; i < RM; i++) {
            let e = tid + i * 256u;
            // weights: consecutive threads read consecutive k of one row
            let wm = e / TILE_K;
            let wk = e % TILE_K;
            var wv = 0.0;
            if (m0 + wm < p.cout && k0 + wk < k_len) {
                wv = weight[(m0 + wm) * k_len + k0 + wk];
            }
            w_tile[wk * TILE_M + wm] = wv;
        }
        for (var i = 0u; i < RN; i++) {
            let e = tid + i * 256u;
            // columns: consecutive threads read consecutive positions
            let xk = e / TILE_N;
            let xn = e % TILE_N;
            var xv = 0.0;
            if (k0 + xk < k_len && n0 + xn < n_out) {
                xv = column(k0 + xk, origins[i]);
            }
            x_tile[xk * TILE_N + xn] = xv;
        }
        workgroupBarrier();
        accumulate_tile(lid, &acc);
        workgroupBarrier();
    }

    for (var i = 0u; i < RM; i++) {
        let m = m0 + lid.y + 16u * i;
        if (m >= p.cout) {
            continue;
        }
        for (var j = 0u; j < RN; j++) {
            let n = n0 + lid.x + 16u * j;
            if (n >= n_out) {
                continue;
            }
            var v = acc[i * RN + j] + bias[m];
            if ((p.flags & FLAG_RESIDUAL) != 0u) {
                v += residual[m * n_out + n];
            }
            if ((p.flags & FLAG_RELU) != 0u) {
                v = max(v, 0.0);
            }
            out[m * n_out + n] = v;
        }
    }
}
