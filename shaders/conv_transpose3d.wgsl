// conv_transpose3d.wgsl — VideoGPT's SamePadConvTranspose3d (k=4, stride 1 or 2 per dim) as an
// implicit GEMM per output parity class, with fused bias and ReLU, and optionally the BatchNorm +
// ReLU that precedes it applied to its input as it is loaded (as in conv3d.wgsl).
//
// Bind group 0:
//   @binding(0) uniform      p      : Params
//   @binding(1) storage read x      : array<f32>   input, [cin][in_t][in_h][in_w]
//   @binding(2) storage read weight : array<f32>   [cin][cout][4][4][4] (PyTorch ConvTranspose layout)
//   @binding(3) storage read bias   : array<f32>   [cout]
//   @binding(4) storage rw   out    : array<f32>   [cout][in_t·s_t][in_h·s_h][in_w·s_w]
//   @binding(5) storage read scale  : array<f32>   [cin] (read only when flags & 4)
//   @binding(6) storage read shift  : array<f32>   [cin]
//
// The output parity classes (lib/parity_class.wgsl) are each an ordinary GEMM over K = cin × taps,
// with no wasted multiplications by inserted zeros. workgroup_id.z is the class.

struct Params {
    cin: u32, cout: u32, flags: u32, _pad0: u32,
    in_t: u32, in_h: u32, in_w: u32, _pad1: u32,
    s_t: u32, s_h: u32, s_w: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read> scale: array<f32>;
@group(0) @binding(6) var<storage, read> shift: array<f32>;

#include "lib/gemm_tile.wgsl"
#include "lib/conv_input.wgsl"
#include "lib/parity_class.wgsl"

const FLAG_RELU: u32 = 1u;     // the flags are set by the host (src/gpu/mod.rs)
const FLAG_INPUT_NORM: u32 = 4u;

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let s = vec3<u32>(p.s_t, p.s_h, p.s_w);
    let c = class_of(wid.z, s);
    let ntaps = c.taps.x * c.taps.y * c.taps.z;
    let n_in = p.in_t * p.in_h * p.in_w; // positions per class = input positions
    let k_len = p.cin * ntaps;
    let m0 = wid.y * TILE_M;
    let n0 = wid.x * TILE_N;
    let tid = lid.y * 16u + lid.x;

    // the class-grid positions this thread stages, decomposed once
    var staged: array<vec3<i32>, RN>;
    for (var i = 0u; i < RN; i++) {
        let n = n0 + (tid + i * 256u) % TILE_N;
        let j = vec3<u32>(n / (p.in_h * p.in_w), (n / p.in_w) % p.in_h, n % p.in_w);
        staged[i] = vec3<i32>(j + c.off);
    }

    var acc: array<f32, RM * RN>;
    for (var k0 = 0u; k0 < k_len; k0 += TILE_K) {
        for (var i = 0u; i < RM; i++) {
            let e = tid + i * 256u;
            let wm = e / TILE_K;
            let wk = e % TILE_K;
            var wv = 0.0;
            if (m0 + wm < p.cout && k0 + wk < k_len) {
                let ci = (k0 + wk) / ntaps;
                let kern = c.k0 + s * tap(c, (k0 + wk) % ntaps);
                wv = weight[(((ci * p.cout + m0 + wm) * 4u + kern.x) * 4u + kern.y) * 4u + kern.z];
            }
            w_tile[wk * TILE_M + wm] = wv;
        }
        for (var i = 0u; i < RN; i++) {
            let e = tid + i * 256u;

            let xk = e / TILE_N;
            let xn = e % TILE_N;
            var xv = 0.0;
            if (k0 + xk < k_len && n0 + xn < n_in) {
                let ci = (k0 + xk) / ntaps;
                let a = tap(c, (k0 + xk) % ntaps);
                let src = staged[i] - vec3<i32>(a);
                if (in_input(src)) {
                    xv = conv_input(ci, vec3<u32>(src));
                }
            }
            x_tile[xk * TILE_N + xn] = xv;
        }
        workgroupBarrier();
        accumulate_tile(lid, &acc);
        workgroupBarrier();
    }

    let out_dims = vec3<u32>(p.in_t, p.in_h, p.in_w) * s;
    for (var i = 0u; i < RM; i++) {
        let m = m0 + lid.y + 16u * i;
        if (m >= p.cout) {
            continue;
        }
        for (var jj = 0u; jj < RN; jj++) {
            let n = n0 + lid.x + 16u * jj;
            if (n >= n_in) {
                continue;
            }
            let j = vec3<u32>(n / (p.in_h * p.in_w), (n / p.in_w) % p.in_h, n % p.in_w);
            let o = j * s + c.q;
            var v = acc[i * RN + jj] + bias[m];
            if ((p.flags & FLAG_RELU) != 0u) {
                v = max(v, 0.0);
            }
            out[((m * out_dims.x + o.x) * out_dims.y + o.y) * out_dims.z + o.z] = v;
        }
    }
}
