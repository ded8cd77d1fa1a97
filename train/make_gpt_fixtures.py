"""Golden fixtures for the GPT prior (tests/fixtures/gpt_*): tiny VideoGPT priors over the codes of
the VQ-VAE fixtures (make_fixtures.py must have run), with every weight randomised (fc_out is
zero-initialised in VideoGPT, which would make all logits 0), and their teacher-forced logits and
bits per token on real token grids (carphone, as encoded by that VQ-VAE, and its mirror image).

The frame-conditioned prior carries VideoGPT's 33.9 M-parameter ResNet-34 whatever its size, too
big to commit: its weights come from `videogpt random-prior --seed 7` (a seeded generator the
Rust test re-runs), and only the goldens are committed, with a SHA-256 of the weights they were
made from.

    python train/make_gpt_fixtures.py [--videogpt PATH_TO_BINARY]
"""
import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file, save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from videogpt_ref import load_vqvae  # noqa: E402
from videogpt_ref.gpt import GPTArgs, VideoGPT, load_gpt, save_gpt  # noqa: E402

FIX = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

CONFIGS = {
    # name: (vqvae fixture, args, n_classes for the goldens)
    "gpt_full": ("vqvae_444", GPTArgs(hidden_dim=24, heads=2, layers=2, attn_type="full")),
    "gpt_sparse": ("vqvae_422", GPTArgs(hidden_dim=24, heads=4, layers=2, attn_type="sparse")),
    "gpt_class": ("vqvae_444", GPTArgs(hidden_dim=12, heads=2, layers=1, attn_type="full", class_cond_dim=5)),
}


def randomise(model, gen):
    for name, p in model.named_parameters():
        if name.startswith("vqvae."):
            continue
        if name.endswith(".g"):
            p.data = 0.5 + torch.rand(p.shape, generator=gen)
        elif name.endswith(".b") or name.endswith("bias"):
            p.data = 0.1 * torch.randn(p.shape, generator=gen)
        elif name.endswith("w.weight"):  # class-conditional gain: around 1/sqrt(n)
            p.data = p.data + 0.3 * torch.randn(p.shape, generator=gen)
        else:
            fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
            p.data = torch.randn(p.shape, generator=gen) / np.sqrt(fan_in) * (3.0 if "fc_out" in name else 1.0)


def main():
    torch.set_num_threads(2)
    for i, (name, (vq_name, args)) in enumerate(CONFIGS.items()):
        vq = load_vqvae(FIX / f"{vq_name}.safetensors")
        gen = torch.Generator().manual_seed(100 + i)
        model = VideoGPT(args, vq).eval()
        randomise(model, gen)
        g = load_file(str(FIX / f"{vq_name}_golden.safetensors"))
        x = torch.from_numpy(g["input"])
        with torch.no_grad():
            codes = torch.cat([vq.encode(x), vq.encode(torch.flip(x, dims=[-1]))]).long()
            cond = None
            out = {"codes": codes.numpy().astype(np.int32)}
            if args.class_cond_dim:
                labels = torch.tensor([1, 3])
                cond = {"class_cond": torch.nn.functional.one_hot(labels, args.class_cond_dim).float()}
                out["labels"] = labels.numpy().astype(np.int32)
            out["logits"] = model.logits(codes, cond).numpy()
            out["bits_per_token"] = model.bits_per_token(codes, cond).numpy()
        save_gpt(model, FIX / f"{name}.safetensors", include_vqvae=False)
        save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, str(FIX / f"{name}_golden.safetensors"))
        print(f"{name}: over {vq_name}, codes {tuple(codes.shape)}, logits |max| {np.abs(out['logits']).max():.2f}, "
              f"bits/token {out['bits_per_token']}")


def weights_digest(model):
    """SHA-256 over (key, little-endian f32 bytes) of the GPT's own tensors in key order."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        if not k.startswith("vqvae."):
            h.update(k.encode())
            h.update(v.detach().float().contiguous().numpy().astype("<f4").tobytes())
    return h.hexdigest()


FRAME_COND = dict(vqvae="vqvae_444", hidden_dim=24, heads=2, layers=2, attn_type="full", n_cond_frames=1, seed=7)


def frame_conditioned(videogpt):
    c = FRAME_COND
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gpt_frame.safetensors"
        subprocess.run([videogpt, "random-prior", "--vqvae", str(FIX / f"{c['vqvae']}.safetensors"), "--output", str(path),
                        "--hidden-dim", str(c["hidden_dim"]), "--heads", str(c["heads"]), "--layers", str(c["layers"]),
                        "--attn-type", c["attn_type"], "--n-cond-frames", str(c["n_cond_frames"]), "--seed", str(c["seed"])],
                       check=True)
        model = load_gpt(path)
    vq = model.vqvae
    g = load_file(str(FIX / f"{c['vqvae']}_golden.safetensors"))
    x = torch.from_numpy(g["input"])
    clips = torch.cat([x, torch.flip(x, dims=[-1])])  # carphone and its mirror image
    with torch.no_grad():
        codes = vq.encode(clips).long()
        frames = clips[:, :, :c["n_cond_frames"]]  # the first frame of each clip conditions it
        out = {
            "codes": codes.numpy().astype(np.int32),
            "frame_features": model.frame_features(frames).numpy(),
            "logits": model.logits(codes, {"frame_cond": frames}).numpy(),
            "bits_per_token": model.bits_per_token(codes, {"frame_cond": frames}).numpy(),
        }
    meta = {k: str(v) for k, v in c.items()} | {"weights_sha256": weights_digest(model)}
    save_file({k: np.ascontiguousarray(v) for k, v in out.items()}, str(FIX / "gpt_frame_golden.safetensors"), metadata=meta)
    print(f"gpt_frame: features |max| {np.abs(out['frame_features']).max():.2f}, logits |max| {np.abs(out['logits']).max():.2f}, "
          f"bits/token {out['bits_per_token']}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--videogpt", default=str(Path.home() / ".cache/videogpt-web/target/release/videogpt"),
                    help="the videogpt binary (for the frame-conditioned prior's seeded weights)")
    ap.add_argument("--only-frame", action="store_true", help="only the frame-conditioned goldens")
    a = ap.parse_args()
    if not a.only_frame:
        main()
    frame_conditioned(a.videogpt)
