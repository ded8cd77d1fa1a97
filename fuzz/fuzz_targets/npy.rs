#![no_main]
// .npy videos and token grids.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = videogpt::video::io::read_npy(std::io::Cursor::new(data));
    let _ = videogpt::tokens::npy::read(std::io::Cursor::new(data));
});
