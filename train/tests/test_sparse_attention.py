"""The trainer's block-sparse attention (`KeyBlocks`) is VideoGPT's sparse attention: on random
inputs and gradients it gives what the dense masked attention gives, at the latent grids the
shipped priors use (natural-64 and mmnist 4×16×16, stride 2,4,4 8×16×16, stride 4,2,2 4×32×32),
and it scores each query against only the key blocks the mask allows.

    python3 -m pytest -q train/tests/test_sparse_attention.py
"""

import math
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch numpy pytest)")
F = torch.nn.functional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from videogpt_ref.gpt import SPARSE_BLOCK, KeyBlocks, SelfAttention, attention_mask  # noqa: E402


@pytest.mark.parametrize("shape", [(4, 16, 16), (8, 16, 16), (4, 32, 32)])
def test_block_sparse_equals_the_dense_masked_attention(shape):
    torch.manual_seed(0)
    n = math.prod(shape)
    q, k, v = (torch.randn(2, 3, n, 8, dtype=torch.float64, requires_grad=True) for _ in range(3))
    grad = torch.randn(2, 3, n, 8, dtype=torch.float64)
    dense = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask(shape, "sparse"))
    dense_grads = torch.autograd.grad(dense, (q, k, v), grad)
    sparse = KeyBlocks(attention_mask(shape, "sparse")).double()(q, k, v)
    sparse_grads = torch.autograd.grad(sparse, (q, k, v), grad)
    torch.testing.assert_close(sparse, dense, rtol=1e-10, atol=1e-10)
    for a, b in zip(sparse_grads, dense_grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_each_query_block_reads_only_the_allowed_key_blocks():
    shape = (8, 16, 16)
    blocks = KeyBlocks(attention_mask(shape, "sparse"))
    nb = math.prod(shape) // SPARSE_BLOCK
    # 5 local blocks and the same place in up to 7 earlier frames (8 blocks per frame): 12 of 64
    assert blocks.idx.shape == (nb, 12)
    assert blocks.mask.sum() == attention_mask(shape, "sparse").sum()


def test_the_layer_takes_the_block_path_for_a_whole_grid_and_the_dense_one_for_a_prefix():
    torch.manual_seed(1)
    shape = (4, 16, 16)
    layer = SelfAttention(shape, 32, 4, "sparse")
    x = torch.randn(2, math.prod(shape), 32)
    whole = layer(x)
    layer.key_blocks = None  # the dense masked path
    torch.testing.assert_close(whole, layer(x), rtol=1e-5, atol=1e-5)
    # causal: a prefix's outputs are the whole grid's first positions
    torch.testing.assert_close(layer(x[:, :100]), whole[:, :100], rtol=1e-5, atol=1e-5)
