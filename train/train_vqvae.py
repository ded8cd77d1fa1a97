"""Train a VideoGPT VQ-VAE with the reference model in videogpt_ref (VideoGPT's recipe: EMA codebook
with data initialisation and dead-code restarts, reconstruction MSE / 0.06, commitment 0.25, Adam
3e-4), on a CUDA GPU when there is one and on the CPU otherwise.

    python3 train/data.py --out train/out/natural-64.npz
    python3 train/train_vqvae.py --data train/out/natural-64.npz --out train/out/natural-64 \\
        --n-hiddens 64 --n-res-layers 2 --embedding-dim 64 --n-codes 1024 --minutes 60

Resumable: `--out` holds `checkpoint.pt` (model, optimiser, step, RNG); running the same command
again continues from it, on either device. Every `--save-every` steps the model is also written as
`model.safetensors` (VideoGPT keys, hparams in the metadata), loadable by `videogpt`.
"""

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from runs import add_run_arguments, device_for  # noqa: E402
from videogpt_ref.vqvae import VQVAE, VQVAEArgs, save_vqvae  # noqa: E402


def batches(clips, batch, rng):
    """Random clips, random horizontal flips, to B×3×T×H×W in [-0.5, 0.5]."""
    while True:
        idx = rng.integers(0, len(clips), batch)
        x = clips[idx]
        if x.shape[-1] == 1:  # greyscale data (Moving MNIST): the VQ-VAE takes RGB
            x = np.repeat(x, 3, axis=-1)
        flip = rng.random(batch) < 0.5
        x[flip] = x[flip][:, :, :, ::-1]
        yield torch.from_numpy(np.ascontiguousarray(x)).permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5


def psnr(x, y):
    mse = ((x - y) ** 2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-hiddens", type=int, default=240)
    ap.add_argument("--n-res-layers", type=int, default=4)
    ap.add_argument("--embedding-dim", type=int, default=256)
    ap.add_argument("--n-codes", type=int, default=2048)
    ap.add_argument("--downsample", default="4,4,4")
    ap.add_argument("--batch", type=int, default=16)
    add_run_arguments(ap, 200_000, "stop after this many steps in all")
    args = ap.parse_args()
    device, hardware = device_for(args)

    data = np.load(args.data)
    clips = data["clips"]
    t, res = clips.shape[1], clips.shape[2]
    margs = VQVAEArgs(embedding_dim=args.embedding_dim, n_codes=args.n_codes, n_hiddens=args.n_hiddens,
                      n_res_layers=args.n_res_layers, downsample=tuple(int(d) for d in args.downsample.split(",")),
                      resolution=res, sequence_length=t)
    torch.manual_seed(args.seed)
    model = VQVAE(margs).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999))
    rng = np.random.default_rng(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    ckpt_path, log_path = args.out / "checkpoint.pt", args.out / "log.jsonl"
    step, trained_s, history = 0, 0.0, []
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        model.codebook._need_init = False
        opt.load_state_dict(ck["opt"])
        for group in opt.param_groups:  # the optimiser's state carries the old lr; --lr decides
            group["lr"] = args.lr
        step, trained_s, history = ck["step"], ck["trained_s"], ck.get("history", [])
        rng = np.random.default_rng(args.seed + step)
        torch.manual_seed(args.seed + step)
        # the log may run past the checkpoint (rows logged after its save): keep the checkpoint's
        log_path.write_text("".join(json.dumps(row) + "\n" for row in history))
        print(f"resumed from step {step} ({trained_s / 60:.1f} min trained)", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params / 1e6:.2f} M parameters, {len(clips)} clips of {t}×{res}×{res}, on {hardware}", flush=True)

    def save():
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, trained_s=trained_s, history=history,
                        hardware=hardware, args=vars(args) | dict(data=str(args.data), out=str(args.out))), ckpt_path)
        save_vqvae(model, args.out / "model.safetensors")
        (args.out / "train.json").write_text(json.dumps(dict(step=step, minutes=trained_s / 60, hardware=hardware,
                                                             parameters=n_params, clips=len(clips), args=vars(args) | dict(data=str(args.data), out=str(args.out)),
                                                             last=history[-1] if history else None), indent=2))

    model.train()
    stream = batches(clips, args.batch, rng)
    started = run_started = time.time()  # `started` restarts at each save; the budget does not
    acc = dict(loss=0.0, psnr=0.0, perplexity=0.0, n=0)
    while step < args.steps and (args.minutes is None or time.time() - run_started < args.minutes * 60):
        x = next(stream).to(device)
        recon_loss, x_recon, vq = model(x)
        loss = recon_loss + vq["commitment_loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        step += 1
        acc["loss"] += loss.item()
        acc["psnr"] += psnr(x_recon.detach().clamp(-0.5, 0.5), x)
        acc["perplexity"] += vq["perplexity"].item()
        acc["n"] += 1
        if step % args.log_every == 0:
            n = acc.pop("n")
            used = int((model.codebook.N >= 1).sum().item())
            elapsed = trained_s + time.time() - started
            row = dict(step=step, minutes=round(elapsed / 60, 2), **{k: round(v / n, 4) for k, v in acc.items()}, codes_used=used,
                       lr=args.lr)
            history.append(row)
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            bar = "#" * int(30 * step / args.steps)
            print(f"[{bar:<30}] step {step}  loss {row['loss']:.4f}  PSNR {row['psnr']:.2f} dB  perplexity {row['perplexity']:.0f}  "
                  f"codes used {used}/{args.n_codes}  {elapsed / 60:.1f} min", flush=True)
            acc = dict(loss=0.0, psnr=0.0, perplexity=0.0, n=0)
        if step % args.save_every == 0:
            trained_s += time.time() - started
            started = time.time()
            save()
    trained_s += time.time() - started
    save()
    print(f"stopped at step {step}; wrote {args.out / 'model.safetensors'}", flush=True)


if __name__ == "__main__":
    main()
