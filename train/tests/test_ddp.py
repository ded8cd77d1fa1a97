"""Two processes agree with one: the trainers under `torchrun --nproc_per_node 2` (gloo, CPU) give
the weights one process gives over the same global batches (train/dist.py says how), and a
checkpoint written by two processes resumes in one as one process's own would.

    python3 -m pytest -q train/tests/test_ddp.py

Real frames (tests/fixtures/carphone_8f.npy cut into sixteen 8×32×32 clips), tiny models, a few
steps each. The VQ-VAE runs under SGD: Adam divides each gradient by its own running size, so the
float-order noise of a near-zero gradient (a bias before a BatchNorm) becomes a full-size step and
no two runs of different summation orders could be compared; the GPT has no such parameters and
runs under the trainer's Adam.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch numpy pytest)")
np = pytest.importorskip("numpy")
safetensors_torch = pytest.importorskip("safetensors.torch", reason="safetensors is not installed")

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "train"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    frames = np.load(ROOT / "tests/fixtures/carphone_8f.npy")  # 8×144×176×3
    clips = np.stack([frames[:, y:y + 32, x:x + 32] for y in (0, 40, 80, 112) for x in (0, 48, 96, 144)])
    path = tmp_path_factory.mktemp("ddp") / "clips.npz"
    np.savez(path, clips=clips, test=clips[:4])
    return path


def run(script, args, out, processes=1):
    """The trainer as a user runs it: alone, or under torchrun with `processes` gloo workers."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    if processes == 1:
        cmd = [sys.executable, str(TRAIN / script)]
    else:
        torchrun = shutil.which("torchrun") or pytest.skip("torchrun is not on PATH")
        cmd = [torchrun, "--standalone", "--nproc_per_node", str(processes), str(TRAIN / script)]
    done = subprocess.run(cmd + args + ["--out", str(out), "--threads", "1"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return out


def weights(out):
    return safetensors_torch.load_file(str(out / "model.safetensors"))


def assert_same_weights(one, two, rel):
    a, b = weights(one), weights(two)
    # saved from the unwrapped model: VideoGPT's keys, no DistributedDataParallel `module.` prefix
    assert a.keys() == b.keys()
    assert not any(k.startswith("module.") for k in b)
    worst = max(((a[k].double() - b[k].double()).abs().max() / (a[k].double().abs().max() + 1e-12)).item() for k in a)
    assert worst <= rel, f"two processes' weights differ from one's by {worst:.2e} (relative), more than {rel:.0e}"
    return worst


def log(out):
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


VQVAE = ["--n-hiddens", "16", "--n-res-layers", "1", "--embedding-dim", "8", "--n-codes", "128", "--downsample", "4,4,4",
         "--batch", "4", "--log-every", "1", "--save-every", "100", "--optim", "sgd", "--lr", "0.05",
         "--precision", "f32"]


def test_vqvae_two_processes_equal_one_including_a_codebook_restart(data, tmp_path):
    args = ["--data", str(data), "--steps", "2"] + VQVAE
    one = run("train_vqvae.py", args, tmp_path / "one")
    two = run("train_vqvae.py", args, tmp_path / "two", processes=2)
    # 128 codes for 512 encoder outputs a step: the first step leaves some unused, so the second
    # restarts them from the gathered outputs; both runs restart the same codes
    restarted = [row["codes_restarted"] for row in log(one)]
    assert restarted[-1] > 0, f"no code was restarted: {log(one)}"
    assert restarted == [row["codes_restarted"] for row in log(two)]
    assert [row["codes_used"] for row in log(one)] == [row["codes_used"] for row in log(two)]
    # every tensor, the codebook's EMA state and BatchNorm's running statistics included
    # (measured: 1.6e-5 at most)
    worst = assert_same_weights(one, two, rel=1e-4)
    print(f"VQ-VAE, 2 steps: largest relative difference {worst:.1e}")


def test_gpt_two_processes_equal_one(data, tmp_path):
    args = ["--data", str(data), "--vqvae", str(ROOT / "tests/fixtures/vqvae_444.safetensors"), "--hidden-dim", "24", "--heads", "2",
            "--layers", "2", "--attn-type", "full", "--batch", "4", "--steps", "3", "--log-every", "1", "--save-every", "100", "--lr", "1e-3"]
    one = run("train_gpt.py", args, tmp_path / "one")
    two = run("train_gpt.py", args, tmp_path / "two", processes=2)
    worst = assert_same_weights(one, two, rel=1e-5)  # measured: 7.5e-7
    print(f"GPT, 3 steps: largest relative difference {worst:.1e}")


def test_a_checkpoint_from_two_processes_resumes_in_one(data, tmp_path):
    # one step, then a second in a resumed run: from a checkpoint two processes wrote, the resumed
    # run ends where it ends from one process's checkpoint
    args = ["--data", str(data)] + VQVAE
    for name, processes in (("from-one", 1), ("from-two", 2)):
        run("train_vqvae.py", args + ["--steps", "1"], tmp_path / name, processes=processes)
        run("train_vqvae.py", args + ["--steps", "2"], tmp_path / name)
        assert (tmp_path / name / "train.json").exists()
        assert json.loads((tmp_path / name / "train.json").read_text())["step"] == 2
    assert_same_weights(tmp_path / "from-one", tmp_path / "from-two", rel=1e-4)
