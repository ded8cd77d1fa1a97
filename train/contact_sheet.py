"""Clips (.npy uint8, N×T×H×W×C, or T×H×W×C as `videogpt sample` and `reconstruct` write them, cut
into clips of --clip-frames) → one PNG with a row per clip and a column per frame, for model cards
and docs.

    videogpt sample --model models/mmnist-prior.safetensors --n 4 --seed 0 --output /tmp/s.npy
    python3 train/contact_sheet.py /tmp/s.npy docs/mmnist-samples.png [--every 2] [--scale 2]
"""

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", type=Path, nargs="+", help="one or more .npy files; their clips stack as rows")
    ap.add_argument("output", type=Path)
    ap.add_argument("--clip-frames", type=int, default=16,
                    help="a T×H×W×C file holds clips one after another (as `videogpt sample --n` writes them): rows of this many frames")
    ap.add_argument("--every", type=int, default=1, help="keep every k-th frame")
    ap.add_argument("--scale", type=int, default=1, help="integer upscaling (nearest)")
    ap.add_argument("--gap", type=int, default=2, help="grey pixels between frames")
    args = ap.parse_args()

    rows = []
    for path in args.clips:
        x = np.load(path)
        if x.ndim == 4:
            k = args.clip_frames if len(x) % args.clip_frames == 0 else len(x)
            x = x.reshape(len(x) // k, k, *x.shape[1:])
        if x.ndim != 5 or x.dtype != np.uint8:
            raise SystemExit(f"{path}: expected uint8 N×T×H×W×C or T×H×W×C, got {x.dtype} {x.shape}")
        rows.extend(x[:, :: args.every])
    n, (t, h, w, c) = len(rows), rows[0].shape
    if c == 1:
        rows = [np.repeat(r, 3, axis=-1) for r in rows]
    g = args.gap
    sheet = np.full((n * (h + g) - g, t * (w + g) - g, 3), 128, np.uint8)
    for i, clip in enumerate(rows):
        for j, frame in enumerate(clip):
            sheet[i * (h + g):i * (h + g) + h, j * (w + g):j * (w + g) + w] = frame
    img = Image.fromarray(sheet)
    if args.scale > 1:
        img = img.resize((img.width * args.scale, img.height * args.scale), Image.NEAREST)
    img.save(args.output, optimize=True)
    print(f"wrote {args.output}: {n} clips × {t} frames")


if __name__ == "__main__":
    main()
