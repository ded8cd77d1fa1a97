"""`train_vqvae.py --decoder-only` fine-tunes the decoder of a trained tokenizer and leaves what
decides a clip's tokens exactly as it was: the encoder's weights and BatchNorm statistics, the
pre-quantization conv and the codebook, bit for bit, so that the same clips get the same tokens
and a prior trained over them stays valid. The decoder does change.

    python3 -m pytest -q train/tests/test_decoder_only.py
"""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch numpy pytest)")
np = pytest.importorskip("numpy")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")

ROOT = Path(__file__).resolve().parents[2]
INIT = ROOT / "tests/fixtures/vqvae_444.safetensors"  # n_hiddens 32, 2 res layers, 64 codes of 16, 8×32×32


def test_decoder_only_keeps_every_clips_tokens(tmp_path):
    frames = np.load(ROOT / "tests/fixtures/carphone_8f.npy")  # 8×144×176×3: eight 8×32×32 clips
    clips = np.stack([frames[:, y:y + 32, x:x + 32] for y in (0, 80) for x in (0, 48, 96, 144)])
    np.savez(tmp_path / "clips.npz", clips=clips)
    out = tmp_path / "run"
    args = ["--data", str(tmp_path / "clips.npz"), "--init", str(INIT), "--decoder-only", "--n-hiddens", "32",
            "--n-res-layers", "2", "--embedding-dim", "16", "--n-codes", "64", "--downsample", "4,4,4", "--batch", "4",
            "--steps", "3", "--log-every", "1", "--lr", "1e-3", "--precision", "f32", "--threads", "1", "--out", str(out)]
    done = subprocess.run([sys.executable, str(ROOT / "train/train_vqvae.py")] + args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "decoder only" in done.stdout, done.stdout

    before, after = safetensors_torch.load_file(str(INIT)), safetensors_torch.load_file(str(out / "model.safetensors"))
    tokenizing = [k for k in before if k.startswith(("encoder.", "pre_vq_conv.", "codebook.embeddings"))]
    assert any("running_mean" in k for k in tokenizing), "the encoder's BatchNorm statistics are checked too"
    changed = [k for k in tokenizing if not torch.equal(before[k].float(), after[k].float())]
    assert not changed, f"--decoder-only changed what decides the tokens: {changed}"
    decoder = [k for k in before if k.startswith(("decoder.", "post_vq_conv.")) and "running" not in k and "num_batches" not in k]
    assert any(not torch.equal(before[k].float(), after[k].float()) for k in decoder), "the decoder did not train"
