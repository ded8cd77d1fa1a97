// sample_token.wgsl — draw the next token on the GPU from one step's logits, so sampling needs no
// readback of the logits: temperature, then top-k, then a draw from the softmax with a uniform
// number the host generated from the sample's seed. The token goes into the grid and into the
// one-token buffer the next step embeds.
//
// Bind group 0:
//   @binding(0) uniform      p      : Params
//   @binding(1) storage read logits : array<f32>   [n_codes]
//   @binding(2) storage rw   grid   : array<u32>   [positions]; written at p.position
//   @binding(3) storage rw   token  : array<u32>   [1]
//   @binding(4) storage read draws  : array<f32>   [positions] the run's uniform numbers, uploaded
//                                                 once per sample so that a step's uniforms repeat
//
// Top-k keeps logits ≥ the k-th largest, found by bisection on the count of logits above a
// threshold (a tie at the threshold can keep a few more than k).

struct Params {
    n_codes: u32, top_k: u32, position: u32, _pad0: u32,
    temperature: f32, _pad1: u32, _pad2: u32, _pad3: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> grid: array<u32>;
@group(0) @binding(3) var<storage, read_write> token: array<u32>;
@group(0) @binding(4) var<storage, read> draws: array<f32>;

const THREADS: u32 = 256u;

var<workgroup> partial_f: array<f32, THREADS>;
var<workgroup> partial_u: array<u32, THREADS>;

fn reduce_max(tid: u32, v: f32) -> f32 {
    partial_f[tid] = v;
    workgroupBarrier();
    for (var step = THREADS / 2u; step > 0u; step /= 2u) {
        if (tid < step) {
            partial_f[tid] = max(partial_f[tid], partial_f[tid + step]);
        }
        workgroupBarrier();
    }
    let r = partial_f[0];
    workgroupBarrier();
    return r;
}

fn reduce_min(tid: u32, v: f32) -> f32 {
    return -reduce_max(tid, -v);
}

fn count_at_least(tid: u32, t: f32) -> u32 {
    var c = 0u;
    for (var i = tid; i < p.n_codes; i += THREADS) {
        c += select(0u, 1u, logits[i] >= t);
    }
    partial_u[tid] = c;
    workgroupBarrier();
    for (var step = THREADS / 2u; step > 0u; step /= 2u) {
        if (tid < step) {
            partial_u[tid] += partial_u[tid + step];
        }
        workgroupBarrier();
    }
    let r = partial_u[0];
    workgroupBarrier();
    return r;
}

@compute @workgroup_size(256, 1, 1)
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
    let tid = lid.x;
    var lmax = -3.4e38;
    var lmin = 3.4e38;
    for (var i = tid; i < p.n_codes; i += THREADS) {
        lmax = max(lmax, logits[i]);
        lmin = min(lmin, logits[i]);
    }
    let hi = reduce_max(tid, lmax);
    let lo = reduce_min(tid, lmin);

    // threshold: the largest t with at least top_k logits ≥ t
    var threshold = lo;
    if (p.top_k < p.n_codes) {
        var a = lo;  // count(≥ a) ≥ k
        var b = hi;  // narrowed from above
        for (var it = 0u; it < 40u; it++) {
            let mid = a + (b - a) * 0.5;
            if (count_at_least(tid, mid) >= p.top_k) {
                a = mid;
            } else {
                b = mid;
            }
        }
        threshold = a;
    }

    if (tid == 0u) {
        var total = 0.0;
        for (var i = 0u; i < p.n_codes; i++) {
            if (logits[i] >= threshold) {
                total += exp((logits[i] - hi) / p.temperature);
            }
        }
        var u = draws[p.position] * total;
        var chosen = 0u;
        var last = 0u;
        var found = false;
        for (var i = 0u; i < p.n_codes; i++) {
            if (logits[i] >= threshold) {
                last = i;
                let w = exp((logits[i] - hi) / p.temperature);
                if (!found && u < w) {
                    chosen = i;
                    found = true;
                }
                u -= w;
            }
        }
        if (!found) {
            chosen = last;
        }
        grid[p.position] = chosen;
        token[0] = chosen;
    }
}
