// preprocess.wgsl — VideoGPT's `preprocess` on the GPU: bilinear resize of the shorter side
// (align_corners=False, no antialiasing), centre crop, uint8 → [-0.5, 0.5], channel-first. The
// taps come from the host's ResizePlan (src/video/mod.rs), and the sums are written in the same
// order as the CPU path, so both give the same floats.
//
// Bind group 0:
//   @binding(0) uniform      p     : Params
//   @binding(1) storage read rgb   : array<u32>   T×H×W×3 bytes, packed four to a word
//   @binding(2) storage read rows  : array<u32>   [res][y0, y1, bits(w0), bits(w1)]
//   @binding(3) storage read cols  : array<u32>   [res][x0, x1, bits(w0), bits(w1)]
//   @binding(4) storage read levels: array<f32>   [256] byte / 255
//   @binding(5) storage rw   out   : array<f32>   [3][T][res][res]

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
    let y0 = rows[oy * 4u]; let y1 = rows[oy * 4u + 1u];
    let ly0 = bitcast<f32>(rows[oy * 4u + 2u]); let ly1 = bitcast<f32>(rows[oy * 4u + 3u]);
    let x0 = cols[ox * 4u]; let x1 = cols[ox * 4u + 1u];
    let lx0 = bitcast<f32>(cols[ox * 4u + 2u]); let lx1 = bitcast<f32>(cols[ox * 4u + 3u]);
    for (var c = 0u; c < 3u; c++) {
        let top = lx0 * px(f, y0, x0, c) + lx1 * px(f, y0, x1, c);
        let bottom = lx0 * px(f, y1, x0, c) + lx1 * px(f, y1, x1, c);
        out[(c * p.frames + f) * n + oy * p.res + ox] = ly0 * top + ly1 * bottom - 0.5;
    }
}
