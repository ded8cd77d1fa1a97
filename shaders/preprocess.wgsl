// preprocess.wgsl — `preprocess` on the GPU (spec §1.1): resize of the shorter side, centre crop,
// uint8 → [-0.5, 0.5], channel-first. The taps (antialiased bilinear by default, or VideoGPT's
// 2-tap bilinear) come from the host's ResizePlan (src/video/mod.rs), and the sums are formed in
// the same order as the CPU path, Σ_y wy·(Σ_x wx·p), so both give the same floats.
//
// Bind group 0:
//   @binding(0) uniform      p     : Params
//   @binding(1) storage read rgb   : array<u32>   T×H×W×3 bytes, packed four to a word
//   @binding(2) storage read rows  : array<u32>   [res][offset, count], then [index, bits(weight)] pairs
//   @binding(3) storage read cols  : array<u32>   same layout, per output column
//   @binding(4) storage read levels: array<f32>   [256] byte / 255
//   @binding(5) storage rw   out   : array<f32>   [3][T][res][res]
//   @binding(6) storage rw   rgba  : array<u32>   [T][res][res] the same pixels as RGBA bytes
//                                                 (lib/bytes.wgsl's input_byte, as
//                                                 video::input_to_video makes them: what metrics compare)

struct Params {
    frames: u32, height: u32, width: u32, res: u32,
    row_threads: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rgb: array<u32>;
@group(0) @binding(2) var<storage, read> rows: array<u32>;
@group(0) @binding(3) var<storage, read> cols: array<u32>;
@group(0) @binding(4) var<storage, read> levels: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read_write> rgba: array<u32>;

#include "lib/bytes.wgsl"

// byte / 255 from the host's table: the CPU divides with correct rounding, WGSL's `/` may be off
// by ulps
fn px(frame: u32, y: u32, x: u32, c: u32) -> f32 {
    let i = ((frame * p.height + y) * p.width + x) * 3u + c;
    return levels[(rgb[i >> 2u] >> ((i & 3u) * 8u)) & 255u];
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_threads + gid.x;
    let n = p.res * p.res;
    if (i >= p.frames * n) {
        return;
    }
    let f = i / n;
    let oy = (i % n) / p.res;
    let ox = i % p.res;
    let row_at = rows[oy * 2u]; let row_taps = rows[oy * 2u + 1u];
    let col_at = cols[ox * 2u]; let col_taps = cols[ox * 2u + 1u];
    var pixel = 255u << 24u;
    for (var c = 0u; c < 3u; c++) {
        var acc = 0.0;
        for (var r = 0u; r < row_taps; r++) {
            let y = rows[row_at + 2u * r];
            var line = 0.0;
            for (var k = 0u; k < col_taps; k++) {
                line += bitcast<f32>(cols[col_at + 2u * k + 1u]) * px(f, y, cols[col_at + 2u * k], c);
            }
            acc += bitcast<f32>(rows[row_at + 2u * r + 1u]) * line;
        }
        let v = acc - 0.5;
        out[(c * p.frames + f) * n + oy * p.res + ox] = v;
        pixel |= input_byte(v) << (8u * c);
    }
    rgba[i] = pixel;
}
