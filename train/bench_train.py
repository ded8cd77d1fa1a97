"""Training speed on this CPU: clips/s of the VQ-VAE trainer's step (forward, backward, Adam, the
codebook's EMA) for the levers that need no change to the saved model (issue 26, docs/training.md):
threads, channels_last_3d, bf16 autocast (AVX-512 BF16 / AMX keep f32 master weights), and
torch.compile of the encoder and decoder. Real clips from the v1 data, warm-started from
natural-64. A benchmark, not a test: one markdown row per variant, median of the timed steps.

    python3 train/bench_train.py [--data train/out/natural-64-v1.npz] [--downsample 2,4,4] [--steps 8] \\
        [--variants eager threads1 channels_last bf16 compile]

Run it on an idle machine (pause a training job: kill -STOP PID, then kill -CONT PID).
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from train_vqvae import batches, warm_start  # noqa: E402
from videogpt_ref.vqvae import VQVAE, VQVAEArgs  # noqa: E402


def step_times(variant, args, clips):
    torch.manual_seed(0)
    torch.set_num_threads(1 if variant == "threads1" else args.threads)
    margs = VQVAEArgs(embedding_dim=64, n_codes=1024, n_hiddens=64, n_res_layers=2,
                      downsample=tuple(int(d) for d in args.downsample.split(",")), resolution=64, sequence_length=16)
    model = VQVAE(margs)
    warm_start(model, args.init, args.batch * (16 // margs.downsample[0]) * (64 // margs.downsample[1]) ** 2)
    if variant == "channels_last":
        model = model.to(memory_format=torch.channels_last_3d)
    if variant == "compile":
        model.encoder = torch.compile(model.encoder)
        model.decoder = torch.compile(model.decoder)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4)
    stream = batches(clips, args.batch, np.random.default_rng(0))
    times = []
    for i in range(args.warmup + args.steps):
        x = next(stream)
        if variant == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last_3d)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=variant == "bf16"):
            recon_loss, _, vq = model(x)
            loss = recon_loss + vq["commitment_loss"]
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("train/out/natural-64-v1.npz"))
    ap.add_argument("--init", type=Path, default=Path("models/natural-64.safetensors"))
    ap.add_argument("--downsample", default="2,4,4")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--variants", nargs="*", default=["eager", "threads1", "channels_last", "bf16", "compile"])
    args = ap.parse_args()
    clips = np.load(args.data)["clips"]
    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    cpu = next(l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith("Model name"))
    isa = [f for f in ("avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in lscpu]
    print(f"{cpu} ({', '.join(isa)}), torch {torch.__version__}, stride {args.downsample}, batch {args.batch} of 16×64×64")
    print()
    print("| variant | threads | s/step (median) | clips/s | vs eager |")
    print("|---|---:|---:|---:|---:|")
    base = None
    for v in args.variants:
        t0 = time.time()
        try:
            times = step_times(v, args, clips)
        except Exception as e:  # noqa: BLE001 — a variant this torch cannot run is a row, not a crash
            print(f"| {v} | | failed: {type(e).__name__}: {str(e).splitlines()[0][:80]} | | |", flush=True)
            continue
        med = statistics.median(times)
        base = base or med
        threads = 1 if v == "threads1" else args.threads
        print(f"| {v} | {threads} | {med:.3f} | {args.batch / med:.2f} | {base / med:.2f}× |", flush=True)
        print(f"  ({v}: {time.time() - t0:.0f} s in all, warm-up and compilation included)", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
