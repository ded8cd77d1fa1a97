// codebook_argmin.wgsl — VideoGPT's vector quantisation: for each latent position the code with
// the least ‖x‖² − 2·x·e + ‖e‖² (this expanded form, literally, as the reference computes it),
// ties going to the lowest index.
//
// Bind group 0:
//   @binding(0) uniform      p          : Params
//   @binding(1) storage read z          : array<f32>   [dim][positions] encoder output
//   @binding(2) storage read embeddings : array<f32>   [n_codes][dim]
//   @binding(3) storage read norms      : array<f32>   [n_codes] ‖e‖²
//   @binding(4) storage rw   codes      : array<u32>   [positions]
//   @binding(5) storage read table      : array<f32>   [n_codes][table_dim] (read when table_dim > 0)
//   @binding(6) storage rw   embedded   : array<f32>   [table_dim][positions] table rows of the codes
//
// One workgroup of 64 threads per position; threads scan codes tid, tid+64, … then reduce. When
// reconstructing, the workgroup that found a code also writes its row of the decoder's table
// (post_vq_conv of the codebook), so the decoder needs no lookup pass of its own.

struct Params {
    dim: u32, n_codes: u32, positions: u32, groups_x: u32,
    table_dim: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read> embeddings: array<f32>;
@group(0) @binding(3) var<storage, read> norms: array<f32>;
@group(0) @binding(4) var<storage, read_write> codes: array<u32>;
@group(0) @binding(5) var<storage, read> table: array<f32>;
@group(0) @binding(6) var<storage, read_write> embedded: array<f32>;

const THREADS: u32 = 64u;
const MAX_DIM: u32 = 1024u; // set and checked by the host (src/gpu/mod.rs)

var<workgroup> xv: array<f32, MAX_DIM>;
var<workgroup> best_d: array<f32, THREADS>;
var<workgroup> best_i: array<u32, THREADS>;
var<workgroup> xx_shared: f32;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let pos = wid.y * p.groups_x + wid.x;
    if (pos >= p.positions) {
        return;
    }
    let tid = lid.x;
    for (var e = tid; e < p.dim; e += THREADS) {
        xv[e] = z[e * p.positions + pos];
    }
    workgroupBarrier();
    if (tid == 0u) {
        var xx = 0.0;
        for (var e = 0u; e < p.dim; e++) {
            xx = fma(xv[e], xv[e], xx);
        }
        xx_shared = xx;
    }
    workgroupBarrier();
    let xx = xx_shared;

    var bd = 3.4e38;
    var bi = 0xffffffffu;
    for (var k = tid; k < p.n_codes; k += THREADS) {
        var dot = 0.0;
        for (var e = 0u; e < p.dim; e++) {
            dot = fma(xv[e], embeddings[k * p.dim + e], dot);
        }
        let d = (xx - 2.0 * dot) + norms[k];
        if (d < bd) { // k increases: strict < keeps the first minimum
            bd = d;
            bi = k;
        }
    }
    best_d[tid] = bd;
    best_i[tid] = bi;
    workgroupBarrier();
    for (var step = THREADS / 2u; step > 0u; step /= 2u) {
        if (tid < step) {
            let od = best_d[tid + step];
            let oi = best_i[tid + step];
            if (od < best_d[tid] || (od == best_d[tid] && oi < best_i[tid])) {
                best_d[tid] = od;
                best_i[tid] = oi;
            }
        }
        workgroupBarrier();
    }
    let code = best_i[0];
    if (tid == 0u) {
        codes[pos] = code;
    }
    for (var e = tid; e < p.table_dim; e += THREADS) {
        embedded[e * p.positions + pos] = table[code * p.table_dim + e];
    }
}
