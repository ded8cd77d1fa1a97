#![no_main]
// PyTorch/Lightning checkpoints: the pickle reader and torch's zip and legacy containers. Seed the
// corpus with tests/fixtures/ckpt_*.ckpt.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = videogpt::checkpoint::convert(data, false);
});
