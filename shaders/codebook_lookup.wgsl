// codebook_lookup.wgsl — `F.embedding(codes, embeddings)`, written channel-first for the decoder.
//
// Bind group 0:
//   @binding(0) uniform      p          : Params
//   @binding(1) storage read codes      : array<u32>   [positions]
//   @binding(2) storage read embeddings : array<f32>   [n_codes][dim]
//   @binding(3) storage rw   out        : array<f32>   [dim][positions]

struct Params {
    dim: u32, n_codes: u32, positions: u32, row_threads: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> codes: array<u32>;
@group(0) @binding(2) var<storage, read> embeddings: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * p.row_threads + gid.x;
    if (i >= p.dim * p.positions) {
        return;
    }
    let e = i / p.positions;
    let pos = i % p.positions;
    // codes are range-checked on the host; clamp anyway so a bad one can never read out of bounds
    let code = min(codes[pos], p.n_codes - 1u);
    out[i] = embeddings[code * p.dim + e];
}
