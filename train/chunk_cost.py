"""What live mode's chunking costs: PSNR of the held-out test clips reconstructed (a) in
independent chunks of the temporal stride (4 frames), (b) by a sliding 16-frame window that keeps
its newest chunk (4× the work), (c) by a sliding 8-frame window (the previous chunk as context,
2× the work), and as whole 16-frame windows (the offline reference), all through
`videogpt reconstruct` with the engine's default resize.

    python3 train/chunk_cost.py models/natural-64.safetensors [--frames 96]
"""
import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from evaluate import fetch


def frames_of(path, n):
    """The first `n` frames, RGB uint8 at the file's own size (the CLI resizes, as the page does)."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height", "-of", "csv=p=0", str(path)],
                           capture_output=True, text=True, check=True).stdout.strip().split(",")
    w, h = int(probe[0]), int(probe[1])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", str(n), "-vf", f"scale={w}:{h}", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def per_frame(videogpt, model, clip, tmp):
    np.save(tmp / "in.npy", clip)
    out = subprocess.run([videogpt, "reconstruct", "--model", str(model), "--input", str(tmp / "in.npy"), "--output", str(tmp / "out.npy"), "--json"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)["psnr_per_frame"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", type=Path)
    ap.add_argument("--frames", type=int, default=96, help="the first N frames of each clip (a multiple of 16)")
    ap.add_argument("--videogpt", default=str(Path.home() / ".cache/videogpt-web/target/release/videogpt"))
    args = ap.parse_args()
    stride, window = 4, 16
    print("| clip | frames | whole 16-frame windows | (a) independent 4-frame chunks | (b) sliding 16-frame window, newest 4 | (c) sliding 8-frame window, newest 4 |")
    print("|---|---:|---:|---:|---:|---:|")
    means = {"whole": [], "a": [], "b": [], "c": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        for name, path in fetch().items():
            if name == "bigbuckbunny":
                continue
            clip = frames_of(path, args.frames)
            n = len(clip) // window * window
            clip = clip[:n]
            whole = per_frame(args.videogpt, args.model, clip, tmp)
            chunks = [p for k in range(0, n, stride) for p in per_frame(args.videogpt, args.model, clip[k:k + stride], tmp)]
            def sliding(size):
                out = []
                for k in range(0, n, stride):
                    start = max(0, k + stride - size)
                    out += per_frame(args.videogpt, args.model, clip[start:k + stride], tmp)[-stride:]
                return out

            row = {"whole": np.mean(whole), "a": np.mean(chunks), "b": np.mean(sliding(window)), "c": np.mean(sliding(2 * stride))}
            for k, v in row.items():
                means[k].append(v)
            print(f"| {name} | {n} | {row['whole']:.2f} | {row['a']:.2f} | {row['b']:.2f} | {row['c']:.2f} |", flush=True)
    print(f"| mean | | {np.mean(means['whole']):.2f} | {np.mean(means['a']):.2f} | {np.mean(means['b']):.2f} | {np.mean(means['c']):.2f} |")


if __name__ == "__main__":
    main()
