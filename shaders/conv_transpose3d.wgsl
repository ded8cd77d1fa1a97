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
// The layer equals the full transposed convolution cropped to [1, 1 + n·s) in each dim, so along
// a dim an output o = i·s + k − 1. Split outputs by parity class q (o = s·j + q): then only the
// taps k = k0 + s·a with k0 = (q + 1) mod s reach it (4/s taps), from input i = j − a + off with
// off = (q + 1 − k0) / s. Each class is an ordinary GEMM over K = cin × taps, with no wasted
// multiplications by inserted zeros. workgroup_id.z is the class.

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

// Tile shape: 16×16 threads, each computing RM×RN outputs, so a workgroup covers TILE_M output
// channels × TILE_N positions. The runtime builds a second pipeline with RM = 1, RN = 8 (16×128
// tiles) for layers with few output channels, such as the decoder's last (3 channels), which
// would otherwise leave most of a 64-row tile idle.
const RM: u32 = 4u;
const RN: u32 = 4u;
const TILE_M: u32 = 16u * RM;
const TILE_N: u32 = 16u * RN;
const TILE_K: u32 = 16u;
const FLAG_RELU: u32 = 1u;     // the flags are set by the host (src/gpu/mod.rs)
const FLAG_INPUT_NORM: u32 = 4u;

var<workgroup> w_tile: array<f32, TILE_K * TILE_M>;
var<workgroup> x_tile: array<f32, TILE_K * TILE_N>;

struct Class {
    q: vec3<u32>,     // parity of the outputs in this class
    k0: vec3<u32>,    // first kernel tap that reaches them
    off: vec3<u32>,   // input offset: i = j − a + off
    taps: vec3<u32>,  // taps per dim, 4 / s
}

fn class_of(z: u32) -> Class {
    let s = vec3<u32>(p.s_t, p.s_h, p.s_w);
    var c: Class;
    c.q = vec3<u32>(z / (s.y * s.z), (z / s.z) % s.y, z % s.z);
    c.k0 = (c.q + 1u) % s;
    c.off = (c.q + 1u - c.k0) / s;
    c.taps = 4u / s;
    return c;
}

// tap index a (per dim) of the flattened tap r
fn tap(c: Class, r: u32) -> vec3<u32> {
    return vec3<u32>(r / (c.taps.y * c.taps.z), (r / c.taps.z) % c.taps.y, r % c.taps.z);
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let c = class_of(wid.z);
    let ntaps = c.taps.x * c.taps.y * c.taps.z;
    let n_in = p.in_t * p.in_h * p.in_w; // positions per class = input positions
    let k_len = p.cin * ntaps;
    let m0 = wid.y * TILE_M;
    let n0 = wid.x * TILE_N;
    let tid = lid.y * 16u + lid.x;
    let s = vec3<u32>(p.s_t, p.s_h, p.s_w);

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
                if (all(src >= vec3<i32>(0)) && all(src < vec3<i32>(vec3<u32>(p.in_t, p.in_h, p.in_w)))) {
                    let si = vec3<u32>(src);
                    xv = x[((ci * p.in_t + si.x) * p.in_h + si.y) * p.in_w + si.z];
                    if ((p.flags & FLAG_INPUT_NORM) != 0u) {
                        xv = max(xv * scale[ci] + shift[ci], 0.0);
                    }
                }
            }
            x_tile[xk * TILE_N + xn] = xv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TILE_K; kk++) {
            var a: array<f32, RM>;
            var b: array<f32, RN>;
            for (var i = 0u; i < RM; i++) {
                a[i] = w_tile[kk * TILE_M + lid.y + 16u * i];
            }
            for (var j = 0u; j < RN; j++) {
                b[j] = x_tile[kk * TILE_N + lid.x + 16u * j];
            }
            for (var i = 0u; i < RM; i++) {
                for (var j = 0u; j < RN; j++) {
                    acc[i * RN + j] = fma(a[i], b[j], acc[i * RN + j]);
                }
            }
        }
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
