"""A natural prior's held-out number, from the Rust engine: every 16-frame window of the test
clips (carphone, bikes, Calais at 64×64, `natural.test_windows`, the windows `train_gpt.py`'s
`test_bits` scores) tokenized by `videogpt encode` with the prior's VQ-VAE, then
`videogpt score` (teacher-forced, the whole grid) in bits per token, per clip and overall.

    python3 train/score_prior.py models/natural-64-prior.safetensors [--vqvae models/natural-64.safetensors]

The tokenizer is the shipped file the prior was trained over (`train_gpt.py --vqvae`), so the
tokens are the ones a user's clip gets. Raw tokens cost log2(n_codes) bits: 10 for natural-64.
"""

import argparse
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import natural  # noqa: E402

DEFAULT_BIN = Path.home() / ".cache/videogpt-web/target/release/videogpt"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prior", type=Path)
    ap.add_argument("--vqvae", type=Path, default=Path("models/natural-64.safetensors"), help="the tokenizer")
    ap.add_argument("--videogpt", type=Path, default=DEFAULT_BIN)
    ap.add_argument("--work", type=Path, default=Path("/tmp/videogpt-score"))
    args = ap.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    windows = natural.test_windows()  # N×16×64×64×3 uint8, whole windows in clip order
    clip = args.work / "test-windows.npy"
    np.save(clip, windows.reshape(-1, *windows.shape[2:]))  # one video: each 16 frames a window
    tokens = args.work / "test-tokens.npy"
    subprocess.run([str(args.videogpt), "encode", "--model", str(args.vqvae), "--input", str(clip), "--output", str(tokens)],
                   check=True, capture_output=True)
    out = subprocess.run([str(args.videogpt), "score", "--model", str(args.prior), "--tokens", str(tokens)],
                         check=True, capture_output=True, text=True).stdout
    bits = np.array([float(line.split()[2]) for line in out.splitlines() if line.strip()])
    if len(bits) != len(windows):
        raise SystemExit(f"scored {len(bits)} grids for {len(windows)} windows:\n{out}")
    print(f"| {args.prior.stem} | {len(bits)} windows | {bits.mean():.4f} bits per token |")


if __name__ == "__main__":
    main()
