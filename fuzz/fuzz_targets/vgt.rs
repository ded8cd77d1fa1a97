#![no_main]
// .vgt token files (share links and tokens= attributes are untrusted input): version 1, and
// version 2 decoded under the untrained tiny prior (a file coded under it is a good seed:
// `videogpt encode --model models/tiny-untrained.safetensors --prior models/tiny-untrained-prior.safetensors`).
use std::sync::OnceLock;

static PRIOR: &[u8] = include_bytes!("../../models/tiny-untrained-prior.safetensors");

fn prior() -> &'static videogpt::gpt::Gpt {
    static GPT: OnceLock<videogpt::gpt::Gpt> = OnceLock::new();
    GPT.get_or_init(|| videogpt::gpt::Gpt::load(PRIOR, None).expect("the tiny prior loads"))
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = videogpt::vgt::read(data);
    let _ = videogpt::vgt::header(data);
    let coding = videogpt::vgt::CodingPrior::new(prior(), PRIOR);
    let _ = videogpt::vgt::read_with(data, Some(&coding), |_, _| {});
});
