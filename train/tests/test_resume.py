"""A prior's run resumes from its checkpoint with the optimizer it was saved with, and says so
clearly, before any step, when asked to resume with another (Adam's and AdamW's saved moments
live in different parameter groups, which PyTorch would reject with an error about groups).

    python3 -m pytest -q train/tests/test_resume.py
"""

import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch numpy pytest)")
np = pytest.importorskip("numpy")

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    frames = np.load(ROOT / "tests/fixtures/carphone_8f.npy")  # 8×144×176×3: eight 8×32×32 clips
    clips = np.stack([frames[:, y:y + 32, x:x + 32] for y in (0, 80) for x in (0, 48, 96, 144)])
    path = tmp_path_factory.mktemp("resume") / "clips.npz"
    np.savez(path, clips=clips, test=clips[:2])
    return path


def train(data, out, steps, optimizer):
    args = ["--data", str(data), "--vqvae", str(ROOT / "tests/fixtures/vqvae_444.safetensors"), "--hidden-dim", "24",
            "--heads", "2", "--layers", "2", "--attn-type", "full", "--batch", "4", "--steps", str(steps),
            "--log-every", "1", "--save-every", "1", "--optimizer", optimizer, "--out", str(out), "--threads", "1"]
    return subprocess.run([sys.executable, str(ROOT / "train/train_gpt.py")] + args, capture_output=True, text=True, timeout=300)


def test_a_run_resumes_with_its_optimizer_and_refuses_another_clearly(data, tmp_path):
    out = tmp_path / "run"
    first = train(data, out, 1, "adamw")
    assert first.returncode == 0, first.stderr
    other = train(data, out, 2, "adam")
    assert other.returncode != 0
    assert "was saved by --optimizer adamw" in other.stderr and "resume with --optimizer adamw" in other.stderr, other.stderr
    assert "Traceback" not in other.stderr, other.stderr
    same = train(data, out, 2, "adamw")
    assert same.returncode == 0, same.stderr
    assert "resumed from step 1" in same.stdout, same.stdout
