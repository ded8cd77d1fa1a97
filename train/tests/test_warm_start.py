"""A prior warm-started over another tokenizer's latent grid (`train_gpt.py --init`): every
weight is kept and only the time position embedding is resampled, each new latent frame taking
the old one that covers the same video frames.

    python3 -m pytest -q train/tests/test_warm_start.py
"""

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch numpy pytest)")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from train_gpt import fit_position_embeddings  # noqa: E402
from videogpt_ref.gpt import GPTArgs, VideoGPT  # noqa: E402
from videogpt_ref.vqvae import VQVAE, VQVAEArgs  # noqa: E402


def prior(stride):
    vq = VQVAE(VQVAEArgs(embedding_dim=8, n_codes=16, n_hiddens=8, n_res_layers=1, downsample=stride,
                         sequence_length=16, resolution=32))
    return VideoGPT(GPTArgs(hidden_dim=24, heads=2, layers=1, attn_type="full"), vq)


def test_a_4x_stride_prior_warm_starts_a_2x_stride_one():
    torch.manual_seed(0)
    old = {k: v for k, v in prior((4, 4, 4)).state_dict().items() if not k.startswith("vqvae.")}
    new = prior((2, 4, 4))
    fitted = fit_position_embeddings(old, new.state_dict())
    missing, unexpected = new.load_state_dict(fitted, strict=False)
    assert not unexpected and all(k.startswith("vqvae.") for k in missing)
    time_key = "attn_stack.pos_embd.emb.d_0"
    assert old[time_key].shape[0] == 4 and fitted[time_key].shape[0] == 8
    # latent frame i of the finer grid covers video frames 2i, 2i+1: the old frame i // 2 covered them
    for i in range(8):
        torch.testing.assert_close(fitted[time_key][i], old[time_key][i // 2])
    for k in old:
        if k != time_key:
            assert fitted[k] is old[k], k


def test_a_grid_whose_embedding_width_differs_is_not_resampled():
    old = {"attn_stack.pos_embd.emb.d_0": torch.zeros(4, 6)}
    fitted = fit_position_embeddings(old, {"attn_stack.pos_embd.emb.d_0": torch.zeros(8, 9)})
    assert fitted["attn_stack.pos_embd.emb.d_0"].shape == (4, 6)  # the load then fails, as it should
