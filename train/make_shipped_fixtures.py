"""Golden fixtures for tests/shipped_models.rs: what our PyTorch reference computes with each
shipped natural-video tokenizer on the bundled film's first 16 frames, so that the engine's
tokens and PSNR are checked against an independent implementation on real data, not against a
number it once printed itself.

    python3 train/make_shipped_fixtures.py natural-64 natural-stride2x4x4

writes tests/fixtures/calais16_64.npy (the frames at 64×64, uint8, rounded as the engine rounds
its model-sized input) once, and tests/fixtures/shipped_ID_calais16.safetensors per model:
`indices` (the reference's codes, int32), `psnr` (of its reconstruction, truncated to bytes as
VideoGPT's callers do: the mean over frames of each frame's PSNR, as `videogpt reconstruct`
reports it) and `margin` (the smallest gap between the best and second-best codebook distance:
the engine may pick the other code of a near-tie).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_fixtures import decode_clip  # noqa: E402
from videogpt_ref import preprocess  # noqa: E402
from videogpt_ref.vqvae import load_vqvae, to_uint8  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
FILM = ROOT / "www" / "media" / "calais-1906.mp4"


def frame_psnr(a, b):
    """Mean over frames of 10·log10(255² / MSE), both T×H×W×C uint8."""
    err = (a.astype(np.float64) - b.astype(np.float64)) ** 2
    mse = err.reshape(len(a), -1).mean(axis=1)
    return float(np.mean(10 * np.log10(255.0 ** 2 / mse)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="ids of models/ID.safetensors")
    args = ap.parse_args()

    film = decode_clip(FILM, 16)
    x = preprocess(torch.from_numpy(film), 64, 16, antialias=True)  # C×T×H×W in [-0.5, 0.5]
    frames = np.clip(np.round((x.numpy() + 0.5) * 255), 0, 255).astype(np.uint8).transpose(1, 2, 3, 0)
    np.save(FIXTURES / "calais16_64.npy", np.ascontiguousarray(frames))
    x = torch.from_numpy(frames.transpose(3, 0, 1, 2).astype(np.float32) / 255 - 0.5).unsqueeze(0)

    for model_id in args.models:
        model = load_vqvae(ROOT / "models" / f"{model_id}.safetensors")
        with torch.no_grad():
            z = model.pre_vq_conv(model.encoder(x))
            flat = z.movedim(1, -1).reshape(-1, model.args.embedding_dim)
            d = model.codebook.distances(flat).sort(dim=1).values
            indices = model.encode(x)
            decoded = to_uint8(model.decode(indices))[0]
        psnr = frame_psnr(frames, decoded)
        margin = float((d[:, 1] - d[:, 0]).min())
        out = FIXTURES / f"shipped_{model_id}_calais16.safetensors"
        save_file({"indices": np.ascontiguousarray(indices[0].numpy().astype(np.int32)),
                   "psnr": np.array([psnr], np.float64), "margin": np.array([margin], np.float64)}, str(out))
        print(f"{model_id}: tokens {tuple(indices.shape[1:])}, PSNR {psnr:.3f} dB, smallest code margin {margin:.2e} -> {out.name}")


if __name__ == "__main__":
    main()
