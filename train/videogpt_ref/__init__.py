"""PyTorch reference of VideoGPT, written from docs/videogpt-spec.md (not copied from upstream).

It is the oracle for the Rust engine's golden tests and the model used for training.
"""
from .vqvae import VQVAE, VQVAEArgs, preprocess, save_vqvae, load_vqvae  # noqa: F401
