#![no_main]
// y4m (YUV4MPEG2) videos.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = videogpt::video::io::read_y4m(std::io::Cursor::new(data));
});
