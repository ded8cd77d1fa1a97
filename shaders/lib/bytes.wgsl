// lib/bytes.wgsl — a clip value in [-0.5, 0.5] as a uint8 channel, the two ways the host's
// `video.rs` makes them:
// - a model's output as VideoGPT writes it: (clamp(v, −0.5, 0.5) + 0.5) · 255, truncated, 0 for
//   NaN (`video::to_video`);
// - the model-sized input, which is the clip's own bytes, resampled: rounded to the nearest, so
//   that a clip at the model's size comes back byte for byte (`video::input_to_video`).

fn output_byte(v: f32) -> u32 {
    if (v != v) {
        return 0u;
    }
    return u32((clamp(v, -0.5, 0.5) + 0.5) * 255.0);
}

fn input_byte(v: f32) -> u32 {
    if (v != v) {
        return 0u;
    }
    return u32(floor((clamp(v, -0.5, 0.5) + 0.5) * 255.0 + 0.5));
}
