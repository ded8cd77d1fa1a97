"""Natural-video training data, v2: frames kept near native resolution per source and sampled on the fly.

    python3 train/natural.py --out train/out/sources            # decode every source once (minutes)
    python3 train/train_vqvae.py --sources train/out/sources ...  # then sample batches from them

Why (measured, docs/training.md): the v1 data (`train/data.py`) was pre-cut into 64×64 windows by
ffmpeg's filtered scaler and weighted by frame count (two static or blurry sources were half of it).
Here every source is a `.npy` at short side ≤ 256 (ffmpeg `area`, never upscaled), and each training
clip is drawn afresh:
  - a source picked uniformly (videos and photos in a fixed share), not by frame count;
  - a 16-frame window, temporal stride 1 or 2, reversed half the time;
  - a random shorter side s in [64, min(160, native)], resized with antialiasing (torch
    `antialias=True`, which is the engine's default resize), then a random 64×64 window;
  - photos become clips of a virtual camera panning and zooming over them, rendered at the crop's
    own scale and then resized, so they are not aliased either.

Sources are Debian and PyPI packages only (the same as v1 plus `mate-backgrounds` photos and
`visp-images-data` greyscale sequences). `VALIDATION` sources are held out while pilots run.
"""

import argparse
import glob
import math
import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from data import DEBS, VIDEOS, SKIP, ISCC, PHOTO_WHEELS, fetch

T = 16
MAX_SHORT = 256
MORE_DEBS = ["mate-backgrounds", "visp-images-data"]
VALIDATION = {"diver.mov", "motion.mov", "photo-coffee.png", "photo-astronaut.png", "photo-china.jpg"}
# the same sources as a v1 file (data.py) names them
VALIDATION_V1 = {name.removeprefix("photo-") for name in VALIDATION}


def v1_clips_without(data, names):
    """The clips of a v1 file (`data.py`: `clips`, and `sources` as "name: N clips" rows in the
    order of the clips) without those of the sources in `names`."""
    clips, keep, at = data["clips"], np.ones(len(data["clips"]), bool), 0
    for row in data["sources"]:
        name, count = str(row).split(": ")
        count = int(count.split()[0])
        if name in names:
            keep[at:at + count] = False
        at += count
    assert at == len(clips), "the v1 file's source counts do not cover its clips"
    return clips[keep]


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
                          "-of", "csv=p=0", str(path)], capture_output=True, text=True, input="")
    if out.returncode != 0 or not out.stdout.strip():
        return None
    return tuple(map(int, out.stdout.strip().split(",")[:2]))


def decode_native(path, vf_extra=None, max_short=MAX_SHORT):
    """All frames, shorter side capped at `max_short` with ffmpeg's area filter (never upscaled)."""
    size = probe(path)
    if size is None:
        return None
    w, h = size
    vf = [vf_extra] if vf_extra else []
    if vf_extra and vf_extra.startswith("crop="):
        w, h = map(int, vf_extra[5:].split(":")[:2])
    scale = min(1.0, max_short / min(w, h))
    nw, nh = int(round(w * scale / 2) * 2), int(round(h * scale / 2) * 2)
    vf.append(f"scale={nw}:{nh}:flags=area")
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-fps_mode", "passthrough", "-vf", ",".join(vf),
                          "-f", "rawvideo", "-pix_fmt", "rgb24", "-"], capture_output=True, input=b"")
    frames = np.frombuffer(out.stdout, np.uint8)
    n = frames.size // (nh * nw * 3)
    return frames[: n * nh * nw * 3].reshape(n, nh, nw, 3) if n >= T else None


def visp_sequences(root):
    """visp-images-data's numbered greyscale frame sequences (folders of .pgm/.png) as T×H×W×3."""
    from PIL import Image
    out = []
    for folder in sorted({os.path.dirname(p) for p in glob.glob(str(root / "usr/share/visp-images-data/**/*.pgm"), recursive=True)}):
        files = sorted(glob.glob(os.path.join(folder, "*.pgm")))
        if len(files) < T:
            continue
        frames = [np.asarray(Image.open(f).convert("L")) for f in files[:400]]
        if len({f.shape for f in frames}) != 1 or min(frames[0].shape) < 64:
            continue
        # named by the folder's path inside the package: two sequences share the name "cube"
        name = str(Path(folder).relative_to(root / "usr/share/visp-images-data")).replace("/", "-")
        out.append((name, np.repeat(np.stack(frames)[..., None], 3, axis=-1)))
    return out


def photo_files(root, pip):
    from PIL import Image
    found = []
    for wheel in pip.glob("*.whl"):
        with zipfile.ZipFile(wheel) as z:
            for name in z.namelist():
                if any(name.startswith(p) for p in PHOTO_WHEELS.values()) and name.lower().endswith((".png", ".jpg", ".jpeg")):
                    found.append((Path(name).name, Image.open(io.BytesIO(z.read(name)))))
    for pattern in ["usr/share/doc/opencv-doc/examples/data/*.jpg", "usr/share/doc/opencv-doc/examples/data/*.png",
                    "usr/share/backgrounds/mate/nature/*.jpg"]:
        for p in sorted(glob.glob(str(root / pattern))):
            found.append((Path(p).name, Image.open(p)))
    out = []
    for name, img in found:
        img = img.convert("RGB")
        lo, hi = img.convert("L").getextrema()
        if min(img.size) < 200 or hi - lo < 50:  # icons, masks and flat test patterns
            continue
        scale = min(1.0, 2 * MAX_SHORT / min(img.size))
        img = img.resize((round(img.size[0] * scale), round(img.size[1] * scale)), Image.BOX)
        out.append((name, np.asarray(img)))
    return out


def build(cache: Path, out: Path):
    root, pip = fetch(cache)
    debs = cache / "debs"
    for name in MORE_DEBS:
        if not list(debs.glob(f"{name}_*.deb")):
            subprocess.run(["apt-get", "download", name], cwd=debs, check=True, capture_output=True)
        subprocess.run(["dpkg", "-x", str(next(debs.glob(f"{name}_*.deb"))), str(root)], check=True)
    out.mkdir(parents=True, exist_ok=True)
    paths = [p for pat in VIDEOS for p in sorted(glob.glob(str(root / pat))) if os.path.basename(p) not in SKIP]
    iscc = cache / "iscc"
    if not iscc.exists():
        with tarfile.open(next(pip.glob("iscc_samples-*.tar.gz"))) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(ISCC[1]))
            iscc.mkdir()
            (iscc / "demo.mp4").write_bytes(tar.extractfile(member).read())
    for path, vf in [(p, None) for p in paths] + [(iscc / "demo.mp4", ISCC[2])]:
        frames = decode_native(path, vf)
        if frames is not None:
            np.save(out / f"video-{Path(path).name}.npy", frames)
            print(f"video {Path(path).name}: {frames.shape}", flush=True)
    for name, frames in visp_sequences(root):
        np.save(out / f"video-visp-{name}.npy", frames)
        print(f"video visp-{name}: {frames.shape}", flush=True)
    for name, img in photo_files(root, pip):
        np.save(out / f"photo-{name}.npy", img)
        print(f"photo {name}: {img.shape}", flush=True)


def resize(x, size, antialias):
    """N×C×H×W float → size, bilinear; antialias=True is the engine's default resize."""
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=antialias)


class Sources:
    """The decoded sources of `build`, memory-mapped, split into training and validation."""

    def __init__(self, folder: Path, hold_out=True):
        self.videos, self.photos, self.held = [], [], []
        for p in sorted(folder.glob("*.npy")):
            name = p.name.split("-", 1)[1][:-4]
            arr = np.load(p, mmap_mode="r")
            if hold_out and (name in VALIDATION or f"photo-{name}" in VALIDATION):
                self.held.append((name, arr))
            elif p.name.startswith("video-"):
                self.videos.append((name, arr))
            else:
                self.photos.append((name, arr))

    def describe(self):
        return dict(videos=[n for n, _ in self.videos], photos=[n for n, _ in self.photos], held_out=[n for n, _ in self.held])


def video_clip(frames, rng, res, aa_share):
    n = len(frames)
    stride = 2 if n >= 2 * T and rng.random() < 0.5 else 1
    s0 = rng.integers(0, n - stride * (T - 1))
    clip = torch.from_numpy(np.ascontiguousarray(frames[s0:s0 + stride * T:stride])).permute(0, 3, 1, 2).float()
    if rng.random() < 0.5:
        clip = clip.flip(0)
    return scale_and_crop(clip, rng, res, aa_share)


def scale_and_crop(clip, rng, res, aa_share):
    _, _, h, w = clip.shape
    short = min(h, w)
    s = int(rng.integers(res, max(res, min(int(2.5 * res), short)) + 1))
    size = (s, max(s, round(w * s / h))) if h <= w else (max(s, round(h * s / w)), s)
    if size != (h, w):
        clip = resize(clip, size, antialias=rng.random() < aa_share)
    y, x = rng.integers(0, size[0] - res + 1), rng.integers(0, size[1] - res + 1)
    return clip[:, :, y:y + res, x:x + res]


def photo_clip(img, rng, res, aa_share):
    """A virtual camera panning and zooming over a photo: each frame cropped at its own scale, then
    resized to `res` (so a wide view is downscaled with the same filter as a video frame)."""
    h, w, _ = img.shape
    x = torch.from_numpy(np.ascontiguousarray(img)).permute(2, 0, 1).float()[None]
    side0 = rng.uniform(res, min(h, w))
    side1 = float(np.clip(side0 * rng.uniform(0.7, 1.4), res, min(h, w)))
    c0 = rng.uniform([side0 / 2, side0 / 2], [w - side0 / 2, h - side0 / 2])
    c1 = rng.uniform([side1 / 2, side1 / 2], [w - side1 / 2, h - side1 / 2])
    speed = rng.uniform(0.05, 0.5)
    antialias = rng.random() < aa_share
    frames = []
    for i in range(T):
        f = speed * i / (T - 1)
        side, (cx, cy) = (1 - f) * side0 + f * side1, (1 - f) * c0 + f * c1
        n = max(res, int(round(side)))
        theta = torch.tensor([[[side / w, 0, 2 * cx / w - 1], [0, side / h, 2 * cy / h - 1]]], dtype=torch.float32)
        grid = F.affine_grid(theta, (1, 3, n, n), align_corners=False)
        crop = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
        frames.append(resize(crop, (res, res), antialias) if n != res else crop)
    clip = torch.cat(frames)
    return clip.flip(0) if rng.random() < 0.5 else clip


def batches(sources: Sources, batch, rng, res=64, photo_share=0.35, aa_share=1.0):
    """B×3×T×res×res in [-0.5, 0.5], each clip from a uniformly chosen source."""
    while True:
        clips = []
        for _ in range(batch):
            if sources.photos and rng.random() < photo_share:
                clip = photo_clip(sources.photos[rng.integers(len(sources.photos))][1], rng, res, aa_share)
            else:
                clip = video_clip(sources.videos[rng.integers(len(sources.videos))][1], rng, res, aa_share)
            if rng.random() < 0.5:
                clip = clip.flip(-1)
            clips.append(clip.clamp(0, 255).round())
        yield torch.stack(clips).permute(0, 2, 1, 3, 4) / 255.0 - 0.5


def validation_clips(sources: Sources, res=64, per_video=24, per_photo=6, seed=1234):
    """Fixed windows from the held-out sources, resized as the engine's default does (antialiased,
    shorter side to `res`, centre crop): uint8 N×T×res×res×3."""
    rng = np.random.default_rng(seed)
    out = []
    for name, arr in sources.held:
        if arr.ndim == 4:
            for s0 in np.linspace(0, len(arr) - T, per_video).astype(int):
                clip = torch.from_numpy(np.ascontiguousarray(arr[s0:s0 + T])).permute(0, 3, 1, 2).float()
                out.append(centre(clip, res))
        else:
            for _ in range(per_photo):
                out.append(photo_clip(arr, rng, res, 1.0))
    return np.stack([c.clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy() for c in out])


def centre(clip, res):
    """The engine's target size exactly: shorter side `res`, the other ceil(side·res/short)."""
    _, _, h, w = clip.shape
    size = (res, math.ceil(w * res / h)) if h < w else (math.ceil(h * res / w), res)
    clip = resize(clip, size, antialias=True)
    y, x = (size[0] - res) // 2, (size[1] - res) // 2
    return clip[:, :, y:y + res, x:x + res]


def test_windows(res=64):
    """The public test clips (evaluate.py's: carphone, bikes, Calais), every whole 16-frame window,
    resized as the engine's default does: uint8 N×T×res×res×3. Cached beside the clips."""
    from evaluate import fetch, CACHE
    cached = CACHE / f"test-windows-{res}.npy"
    if cached.exists():
        return np.load(cached)
    out = []
    for name, path in fetch().items():
        if name == "bigbuckbunny":
            continue
        frames = decode_native(path, max_short=10_000)
        for s0 in range(0, len(frames) - T + 1, T):
            clip = torch.from_numpy(np.ascontiguousarray(frames[s0:s0 + T])).permute(0, 3, 1, 2).float()
            out.append(centre(clip, res).clamp(0, 255).round().byte().permute(0, 2, 3, 1).numpy())
    np.save(cached, np.stack(out))
    return np.stack(out)


@torch.no_grad()
def frame_psnr(model, clips, batch=8):
    """Mean per-frame PSNR of reconstructions, on clamped, uint8-truncated output (as the engine)."""
    was = model.training
    model.eval()
    scores = []
    for i in range(0, len(clips), batch):
        x = torch.from_numpy(clips[i:i + batch]).permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5
        _, recon, _ = model(x)
        y = ((recon.clamp(-0.5, 0.5) + 0.5) * 255).floor().permute(0, 2, 3, 4, 1)
        ref = torch.from_numpy(clips[i:i + batch]).float()
        mse = ((y - ref) ** 2).mean(dim=(2, 3, 4)).clamp_min(1e-10)
        scores.append(10 * torch.log10(255.0 ** 2 / mse).flatten())
    model.train(was)
    return torch.cat(scores).mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "videogpt-data")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    build(args.cache, args.out)


if __name__ == "__main__":
    main()
