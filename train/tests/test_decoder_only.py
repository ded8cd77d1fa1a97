"""`train_vqvae.py --decoder-only` fine-tunes the decoder of a trained tokenizer and leaves what
decides a clip's tokens exactly as it was: the encoder's weights and BatchNorm statistics, the
pre-quantization conv and the codebook, bit for bit, so that the same clips get the same tokens
and a prior trained over them stays valid. The decoder does change. `train/pair.py` then gives a
prior that decoder, and refuses a tokenizer retrained as a whole.

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



VQVAE = ["--n-hiddens", "32", "--n-res-layers", "2", "--embedding-dim", "16", "--n-codes", "64", "--downsample", "4,4,4",
         "--batch", "4", "--log-every", "1", "--lr", "1e-3", "--precision", "f32", "--threads", "1"]


def run(script, args):
    done = subprocess.run([sys.executable, str(ROOT / "train" / script)] + args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Clips, and three runs from INIT: the decoder only, the whole tokenizer, a prior over INIT's tokens."""
    tmp = tmp_path_factory.mktemp("decoder-only")
    frames = np.load(ROOT / "tests/fixtures/carphone_8f.npy")  # 8×144×176×3: eight 8×32×32 clips
    clips = np.stack([frames[:, y:y + 32, x:x + 32] for y in (0, 80) for x in (0, 48, 96, 144)])
    np.savez(tmp / "clips.npz", clips=clips, test=clips[:2])
    data = ["--data", str(tmp / "clips.npz")]
    decoder = run("train_vqvae.py", data + VQVAE + ["--init", str(INIT), "--decoder-only", "--steps", "3", "--out", str(tmp / "dec")])
    run("train_vqvae.py", data + VQVAE + ["--init", str(INIT), "--steps", "3", "--out", str(tmp / "all")])
    run("train_gpt.py", data + ["--vqvae", str(INIT), "--hidden-dim", "24", "--heads", "2", "--layers", "2", "--attn-type", "full",
                                "--batch", "4", "--steps", "1", "--threads", "1", "--out", str(tmp / "prior")])
    return tmp, decoder.stdout


def test_decoder_only_keeps_every_clips_tokens(trained):
    tmp, stdout = trained
    assert "decoder only" in stdout, stdout
    before, after = safetensors_torch.load_file(str(INIT)), safetensors_torch.load_file(str(tmp / "dec/model.safetensors"))
    tokenizing = [k for k in before if k.startswith(("encoder.", "pre_vq_conv.", "codebook.embeddings"))]
    assert any("running_mean" in k for k in tokenizing), "the encoder's BatchNorm statistics are checked too"
    changed = [k for k in tokenizing if not torch.equal(before[k].float(), after[k].float())]
    assert not changed, f"--decoder-only changed what decides the tokens: {changed}"
    decoder = [k for k in before if k.startswith(("decoder.", "post_vq_conv.")) and "running" not in k and "num_batches" not in k]
    assert any(not torch.equal(before[k].float(), after[k].float()) for k in decoder), "the decoder did not train"


def test_pair_gives_a_prior_the_fine_tuned_decoder_and_refuses_a_retrained_tokenizer(trained):
    tmp, _ = trained
    prior, out = tmp / "prior/model.safetensors", tmp / "paired.safetensors"
    run("pair.py", [str(prior), str(tmp / "dec/model.safetensors"), str(out)])
    old, dec, paired = (safetensors_torch.load_file(str(p)) for p in (prior, tmp / "dec/model.safetensors", out))
    assert paired.keys() == old.keys()
    assert all(torch.equal(paired[k], old[k]) for k in old if not k.startswith("vqvae.")), "the GPT's own weights are kept"
    assert all(torch.equal(paired[f"vqvae.{k}"], dec[k]) for k in dec if f"vqvae.{k}" in old), "the VQ-VAE is the fine-tuned one"
    refused = subprocess.run([sys.executable, str(ROOT / "train/pair.py"), str(prior), str(tmp / "all/model.safetensors"),
                              str(tmp / "wrong.safetensors")], capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "tokenizes differently" in refused.stderr, refused.stderr
    assert not (tmp / "wrong.safetensors").exists()
