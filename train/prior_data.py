"""The natural-video prior's data (issue 27): clips for `train_gpt.py --data`, which encodes them
with the tokenizer it is given and logs bits per token on the held-out windows.

    python3 train/prior_data.py --out train/out/natural-prior-v1.npz

- `clips`: the tokenizer's v1 training clips (`data.py`), without the sources the tokenizer holds
  out for validation, and each also mirrored left to right (a flip at the pixel level: the codes of
  a mirrored clip are not the mirrored codes);
- `val`: fixed windows of those held-out sources (`natural.validation_clips`), never trained on by
  the tokenizer or the prior;
- `test`: the 16-frame windows of the test clips (carphone, bikes, Calais: `natural.test_windows`).
"""
import argparse
from pathlib import Path

import numpy as np

import natural

def training_clips(v1: Path, flip: bool):
    """The v1 clips of every source but the tokenizer's validation ones, and their mirror images."""
    clips = natural.v1_clips_without(np.load(v1), natural.VALIDATION_V1)
    return np.concatenate([clips, clips[:, :, :, ::-1]]) if flip else clips


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--v1", type=Path, default=Path("train/out/natural-64-v1.npz"))
    ap.add_argument("--sources", type=Path, default=Path("train/out/sources"))
    ap.add_argument("--no-flip", action="store_true")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    clips = training_clips(args.v1, not args.no_flip)
    val = natural.validation_clips(natural.Sources(args.sources))
    test = natural.test_windows()
    np.savez(args.out, clips=clips, val=val, test=test)
    print(f"{args.out}: {len(clips)} training clips, {len(val)} validation and {len(test)} test windows, {clips.shape[1:]}")


if __name__ == "__main__":
    main()
