// conv_transpose3d_few.wgsl — conv_transpose3d.wgsl for layers with at most 4 output channels (the
// decoder's last, which makes RGB): one thread per output position of a parity class computes
// every channel as the lanes of one vec4, so at most one multiply in four is spent on a channel
// that does not exist (a 16-row GEMM tile would waste 13 of 16 on 3 channels). The sums run over k in the same order as the tiled
// kernel's, so both give the same floats. With 3 channels the thread also writes the pixel as
// RGBA bytes (lib/bytes.wgsl's output_byte, as video::to_video makes them), which is what a chunk's readback brings home.
//
// Bind group 0:
//   @binding(0) uniform      p      : Params (as conv_transpose3d.wgsl)
//   @binding(1) storage read x      : array<f32>   input, [cin][in_t][in_h][in_w]
//   @binding(2) storage read weight : array<f32>   [cin][cout][4][4][4]
//   @binding(3) storage read bias   : array<f32>   [cout]
//   @binding(4) storage rw   out    : array<f32>   [cout][in_t·s_t][in_h·s_h][in_w·s_w]
//   @binding(5) storage read scale  : array<f32>   [cin] (read only when flags & FLAG_INPUT_NORM)
//   @binding(6) storage read shift  : array<f32>   [cin]
//   @binding(7) storage rw   rgba   : array<u32>   [out positions] (written when cout = 3)
//
// workgroup_id.x·256 + local id is the position in the class grid, workgroup_id.z the class.

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
@group(0) @binding(7) var<storage, read_write> rgba: array<u32>;

const MAX_COUT: u32 = 4u;      // set and checked by the host (src/gpu/mod.rs)
const TILE_K: u32 = 64u;       // TILE_K · MAX_COUT = 256 weights staged per step, one per thread
const FLAG_RELU: u32 = 1u;     // the flags are set by the host
const FLAG_INPUT_NORM: u32 = 4u;

var<workgroup> w_tile: array<vec4<f32>, TILE_K>; // [TILE_K] × the 4 channels (zeros past cout)

#include "lib/conv_input.wgsl"
#include "lib/parity_class.wgsl"
#include "lib/bytes.wgsl"

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let s = vec3<u32>(p.s_t, p.s_h, p.s_w);
    let c = class_of(wid.z, s);
    let ntaps = c.taps.x * c.taps.y * c.taps.z;
    let n_in = p.in_t * p.in_h * p.in_w;
    let k_len = p.cin * ntaps;
    let n = wid.x * 256u + lid.x;
    let valid = n < n_in;
    let j = vec3<u32>(n / (p.in_h * p.in_w), (n / p.in_w) % p.in_h, n % p.in_w);
    let base = vec3<i32>(j + c.off);

    var acc = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < k_len; k0 += TILE_K) {
        let wk = lid.x / MAX_COUT;
        let wm = lid.x % MAX_COUT;
        var wv = 0.0;
        if (wm < p.cout && k0 + wk < k_len) {
            let ci = (k0 + wk) / ntaps;
            let kern = c.k0 + s * tap(c, (k0 + wk) % ntaps);
            wv = weight[(((ci * p.cout + wm) * 4u + kern.x) * 4u + kern.y) * 4u + kern.z];
        }
        w_tile[wk][wm] = wv;
        workgroupBarrier();
        if (valid) {
            for (var kk = 0u; kk < TILE_K && k0 + kk < k_len; kk++) {
                let ci = (k0 + kk) / ntaps;
                let src = base - vec3<i32>(tap(c, (k0 + kk) % ntaps));
                var xv = 0.0;
                if (in_input(src)) {
                    xv = conv_input(ci, vec3<u32>(src));
                }
                acc = fma(w_tile[kk], vec4<f32>(xv), acc);
            }
        }
        workgroupBarrier();
    }
    if (!valid) {
        return;
    }

    let out_dims = vec3<u32>(p.in_t, p.in_h, p.in_w) * s;
    let o = j * s + c.q;
    let at = (o.x * out_dims.y + o.y) * out_dims.z + o.z;
    let plane = out_dims.x * out_dims.y * out_dims.z;
    var pixel = 255u << 24u;
    for (var m = 0u; m < p.cout; m++) {
        var v = acc[m] + bias[m];
        if ((p.flags & FLAG_RELU) != 0u) {
            v = max(v, 0.0);
        }
        out[m * plane + at] = v;
        pixel |= output_byte(v) << (8u * m);
    }
    if (p.cout == 3u) {
        rgba[at] = pixel;
    }
}
