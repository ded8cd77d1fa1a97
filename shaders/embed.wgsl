// embed.wgsl — the input of one decoding step: fc_in of the previous token's codebook vector plus
// the position's embedding. fc_in is linear, so the host applies it to every code once, at load
// (`table`), and a step is a row lookup and an add instead of a lookup and a GEMV.
//
// Bind group 0:
//   @binding(0) uniform      p     : Params
//   @binding(1) storage read token : array<u32>   [1] the previous token (drawn on the GPU)
//   @binding(2) storage read table : array<f32>   [n_codes][dim] fc_in(codebook)
//   @binding(3) storage read pos   : array<f32>   [positions][dim]; row p.position is added
//   @binding(4) storage rw   out   : array<f32>   [dim]

struct Params {
    dim: u32, n_codes: u32, position: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> token: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> pos: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let j = gid.x;
    if (j >= p.dim) {
        return;
    }
    // tokens come from the sampler or the range-checked prefix; clamp anyway
    let code = min(token[0], p.n_codes - 1u);
    out[j] = table[code * p.dim + j] + pos[p.position * p.dim + j];
}
