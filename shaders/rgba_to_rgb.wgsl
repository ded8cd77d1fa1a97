// rgba_to_rgb.wgsl — frames that reached the GPU as images (the browser's
// copyExternalImageToTexture into an rgba8unorm texture, then copied to a buffer with its rows
// padded to 256 bytes) → the packed T×H×W×3 RGB bytes that preprocess.wgsl reads. The bytes are
// moved, never converted to floats, so the clip is exactly the texture's pixels.
//
// Bind group 0:
//   @binding(0) uniform      p    : Params
//   @binding(1) storage read rgba : array<u32>   [T][H][row_words], one RGBA pixel per word
//   @binding(2) storage rw   rgb  : array<u32>   T×H×W×3 bytes, packed four to a word

struct Params {
    frames: u32, height: u32, width: u32, row_words: u32,
    words: u32, row_threads: u32, _pad0: u32, _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> rgba: array<u32>;
@group(0) @binding(2) var<storage, read_write> rgb: array<u32>;

// byte i of the RGB clip
fn rgb_byte(i: u32) -> u32 {
    let pixel = i / 3u;
    let channel = i % 3u;
    let row = pixel / p.width; // frame * height + y
    let x = pixel % p.width;
    // rgba8unorm stores R, G, B, A in that byte order: R is the word's low byte
    return (rgba[row * p.row_words + x] >> (channel * 8u)) & 255u;
}

@compute @workgroup_size(256)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let word = gid.y * p.row_threads + gid.x;
    if (word >= p.words) {
        return;
    }
    let total = p.frames * p.height * p.width * 3u;
    var packed = 0u;
    for (var k = 0u; k < 4u; k++) {
        let i = word * 4u + k;
        if (i < total) {
            packed |= rgb_byte(i) << (k * 8u);
        }
    }
    rgb[word] = packed;
}
