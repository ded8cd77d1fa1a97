// decode_attention.wgsl — one decoding step of VideoGPT's causal self-attention: the query of
// position i against the cached keys and values of positions 0..=i, with the full causal mask or
// the sparse block pattern (spec §3.4: within the 4 previous blocks of 32 tokens, or the same
// block column of an earlier frame). With position = n_positions − 1 and no sparsity it is also
// the cross-attention to the frame features, whose values are v_dim (240) wide, not dim.
//
// Bind group 0:
//   @binding(0) uniform      p       : Params
//   @binding(1) storage read q       : array<f32>   [dim] (head-major: head·d_head + j)
//   @binding(2) storage read k_cache : array<f32>   [positions][dim]
//   @binding(3) storage read v_cache : array<f32>   [positions][v_dim]
//   @binding(4) storage rw   scores  : array<f32>   [heads][positions] scratch
//   @binding(5) storage rw   out     : array<f32>   [v_dim]
//
// One workgroup per head: scores to the scratch buffer, max and sum reduced in workgroup memory,
// then each thread produces some of the head's outputs.

struct Params {
    dim: u32, heads: u32, position: u32, n_positions: u32,
    sparse: u32, blocks_per_frame: u32, v_dim: u32, _pad0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;

const THREADS: u32 = 64u;
const BLOCK: u32 = 32u;
const LOCAL_BLOCKS: u32 = 4u;

var<workgroup> partial: array<f32, THREADS>;

fn allowed(i: u32, j: u32) -> bool {
    if (p.sparse == 0u) {
        return j <= i;
    }
    let r = i / BLOCK;
    let c = j / BLOCK;
    return j <= i && (r - c <= LOCAL_BLOCKS || c % p.blocks_per_frame == r % p.blocks_per_frame);
}

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let head = wid.x;
    let tid = lid.x;
    let dk = p.dim / p.heads;
    let base = head * dk;
    let i = p.position;
    let row = head * p.n_positions;
    let scale = sqrt(f32(dk));

    var local_max = -3.4e38;
    for (var j = tid; j <= i; j += THREADS) {
        var s = -3.4e38;
        if (allowed(i, j)) {
            var acc = 0.0;
            for (var d = 0u; d < dk; d++) {
                acc = fma(q[base + d], k_cache[j * p.dim + base + d], acc);
            }
            s = acc / scale;
            local_max = max(local_max, s);
        }
        scores[row + j] = s;
    }
    partial[tid] = local_max;
    workgroupBarrier();
    for (var step = THREADS / 2u; step > 0u; step /= 2u) {
        if (tid < step) {
            partial[tid] = max(partial[tid], partial[tid + step]);
        }
        workgroupBarrier();
    }
    let row_max = partial[0];
    workgroupBarrier();

    var local_sum = 0.0;
    for (var j = tid; j <= i; j += THREADS) {
        var e = 0.0;
        if (allowed(i, j)) {
            e = exp(scores[row + j] - row_max);
        }
        scores[row + j] = e;
        local_sum += e;
    }
    partial[tid] = local_sum;
    workgroupBarrier();
    for (var step = THREADS / 2u; step > 0u; step /= 2u) {
        if (tid < step) {
            partial[tid] += partial[tid + step];
        }
        workgroupBarrier();
    }
    let row_sum = partial[0];
    // every thread must see the scores the others wrote
    storageBarrier();
    workgroupBarrier();

    let dv = p.v_dim / p.heads;
    let base_v = head * dv;
    for (var d = tid; d < dv; d += THREADS) {
        var acc = 0.0;
        for (var j = 0u; j <= i; j++) {
            acc = fma(scores[row + j] / row_sum, v_cache[j * p.v_dim + base_v + d], acc);
        }
        out[base_v + d] = acc;
    }
}
