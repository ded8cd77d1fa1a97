//! Random GPT weights for tests and benchmarks of sizes no fixture has.

use super::*;

/// A `.safetensors` GPT with random weights (N(0, 1/fan_in)-scaled, norms near identity) for
/// `config` over the VQ-VAE `vqvae`, for benchmarks and tests of sizes no fixture has.
pub fn random_weights(config: &GptConfig, vqvae: &VqVaeConfig, seed: u64) -> Vec<u8> {
    let mut rng = crate::rng::SplitMix64::new(seed);
    let tensors: Vec<_> = config
        .state_dict_shapes()
        .into_iter()
        .map(|(key, shape)| {
            let n: usize = shape.iter().product();
            // inputs per output: the row of a linear layer, in·k³ of a convolution
            let fan_in = if shape.len() > 1 { shape[1..].iter().product::<usize>() } else { shape[0] } as f32;
            let values = if key.ends_with(".g") || key.ends_with("norm.norm.weight") {
                vec![1.0; n]
            } else if key.ends_with(".b") || key.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let bound = (3.0 / fan_in).sqrt();
                (0..n).map(|_| bound * (2.0 * rng.next_f32() - 1.0)).collect()
            };
            (key, safetensors::Dtype::F32, shape, bytemuck::cast_slice(&values).to_vec())
        })
        .collect();
    crate::weights::to_safetensors(&tensors, config.to_metadata(vqvae))
}
