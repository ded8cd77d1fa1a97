#![no_main]
// .vgt token files (share links and tokens= attributes are untrusted input).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = videogpt::vgt::read(data);
});
