#![no_main]
// Model files: a VQ-VAE (also as a prior's `vqvae.`) and a GPT prior, from safetensors bytes.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = videogpt::workflow::Tokenizer::load(&videogpt::Cpu, data, "");
    let _ = videogpt::gpt::Gpt::load(data, None);
});
