// lib/parity_class.wgsl — the output parity classes of VideoGPT's transposed convolution (k = 4,
// stride s = 1 or 2 per dim), shared by conv_transpose3d.wgsl and conv_transpose3d_few.wgsl.
//
// The layer equals the full transposed convolution cropped to [1, 1 + n·s) in each dim, so along
// a dim an output o = i·s + k − 1. Split outputs by parity class q (o = s·j + q): then only the
// taps k = k0 + s·a with k0 = (q + 1) mod s reach it (4/s taps), from input i = j − a + off with
// off = (q + 1 − k0) / s. Each class is an ordinary GEMM over K = cin × taps, with no wasted
// multiplications by inserted zeros.

struct Class {
    q: vec3<u32>,     // parity of the outputs in this class
    k0: vec3<u32>,    // first kernel tap that reaches them
    off: vec3<u32>,   // input offset: i = j − a + off
    taps: vec3<u32>,  // taps per dim, 4 / s
}

// class z of the s.x·s.y·s.z classes (z is the dispatch's workgroup_id.z)
fn class_of(z: u32, s: vec3<u32>) -> Class {
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
