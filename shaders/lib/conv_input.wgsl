// lib/conv_input.wgsl — one input value of a convolution, shared by conv3d.wgsl,
// conv_transpose3d.wgsl and conv_transpose3d_few.wgsl. The including kernel declares `p` (with
// cin, in_t, in_h, in_w and flags), `x`, `scale`, `shift` and FLAG_INPUT_NORM, as all three do.
//
// x[ci][at] in [cin][in_t][in_h][in_w] order; with FLAG_INPUT_NORM it stands for
// max(x·scale[ci] + shift[ci], 0): the eval-mode BatchNorm and ReLU that precede the layer,
// applied as the input is loaded (as affine_relu.wgsl computes them). Positions outside the input
// are the caller's to test: the padding zeros stay zeros, since PyTorch pads the normalised input.

fn conv_input(ci: u32, at: vec3<u32>) -> f32 {
    let v = x[((ci * p.in_t + at.x) * p.in_h + at.y) * p.in_w + at.z];
    if ((p.flags & FLAG_INPUT_NORM) != 0u) {
        return max(v * scale[ci] + shift[ci], 0.0);
    }
    return v;
}

// whether `at` (which may be negative) lies inside the input
fn in_input(at: vec3<i32>) -> bool {
    return all(at >= vec3<i32>(0)) && all(at < vec3<i32>(vec3<u32>(p.in_t, p.in_h, p.in_w)));
}
