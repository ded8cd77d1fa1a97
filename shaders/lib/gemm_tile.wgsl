// lib/gemm_tile.wgsl — the register-tiled inner product of the GEMM-shaped kernels (conv3d.wgsl,
// conv_transpose3d.wgsl). A 16×16 workgroup computes a TILE_M × TILE_N tile of the output, each
// thread RM × RN of it; every step stages a TILE_K-deep slice of the weights (`w_tile`,
// [TILE_K][TILE_M]) and of the input columns (`x_tile`, [TILE_K][TILE_N]) in workgroup memory.
//
// Tile shape: the runtime builds each GEMM kernel with RM × RN = 4×4 (64×64 tiles), 2×4 (32×64)
// and 1×8 (16×128), and picks by the layer's output channels so that no tile is mostly idle (the
// decoder's last layer has 3). It finds and sets the declaration below by its text.

const RM: u32 = 4u;
const RN: u32 = 4u;
const TILE_M: u32 = 16u * RM;
const TILE_N: u32 = 16u * RN;
const TILE_K: u32 = 16u;

var<workgroup> w_tile: array<f32, TILE_K * TILE_M>;
var<workgroup> x_tile: array<f32, TILE_K * TILE_N>;

// acc[i][j] += Σ_kk w_tile[kk][lid.y + 16i] · x_tile[kk][lid.x + 16j], in kk order (so every
// tile shape sums in the same order and gives the same floats).
fn accumulate_tile(lid: vec3<u32>, acc: ptr<function, array<f32, RM * RN>>) {
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
                (*acc)[i * RN + j] = fma(a[i], b[j], (*acc)[i * RN + j]);
            }
        }
    }
}
