"""Seconds per training step of a prior (forward, backward, optimizer) on this machine, for the
choices that change the cost of a step but not what is learned: sparse attention as a dense
masked softmax or block-sparse (only the allowed key blocks), and f32 or bf16 autocast.

    python3 train/bench_prior_step.py --grid 8,16,16 --hidden-dim 240 --layers 6 [--batch 8] [--steps 3]

Random codes over an untrained VQ-VAE's codebook of the given size (the cost does not depend on
the weights). Pause any training job first (`kill -STOP PID`): the numbers are the machine's.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_gpt import NextTokenLoss  # noqa: E402
from videogpt_ref.gpt import GPTArgs, VideoGPT  # noqa: E402
from videogpt_ref.vqvae import VQVAE, VQVAEArgs  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", default="8,16,16", help="the latent grid T',H',W' (stride 2,4,4 of 16×64×64: 8,16,16)")
    ap.add_argument("--n-codes", type=int, default=256)
    ap.add_argument("--hidden-dim", type=int, default=240)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=3, help="timed steps, after one warm-up step")
    args = ap.parse_args()
    t, h, w = (int(x) for x in args.grid.split(","))
    stride = (16 // t, 64 // h, 64 // w)
    vq = VQVAE(VQVAEArgs(embedding_dim=32, n_codes=args.n_codes, n_hiddens=32, n_res_layers=1,
                         downsample=stride, sequence_length=16, resolution=64))
    model = VideoGPT(GPTArgs(hidden_dim=args.hidden_dim, heads=args.heads, layers=args.layers, attn_type="sparse"), vq)
    params = [p for n, p in model.named_parameters() if not n.startswith("vqvae.")]
    opt = torch.optim.Adam(params, lr=1e-4)
    x = torch.randint(0, args.n_codes, (args.batch, t, h, w))
    print(f"{args.hidden_dim}×{args.layers} over {t}×{h}×{w} tokens, batch {args.batch}, {torch.get_num_threads()} threads")
    print("| attention | precision | s per step | clips/s |\n|---|---|---:|---:|")
    key_blocks = [layer.attn.key_blocks for layer in model.attn_stack.attn_nets]
    for block_sparse in (False, True):
        for bf16 in (False, True):
            for layer, blocks in zip(model.attn_stack.attn_nets, key_blocks):
                layer.attn.key_blocks = blocks if block_sparse else None  # None: the dense masked softmax
            loss_fn = NextTokenLoss(model, bf16)
            times = []
            for i in range(args.steps + 1):
                t0 = time.time()
                loss = loss_fn(x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                times.append(time.time() - t0)
            s = sorted(times[1:])[len(times[1:]) // 2]
            print(f"| {'block-sparse' if block_sparse else 'dense mask'} | {'bf16' if bf16 else 'f32'} | {s:.2f} | "
                  f"{args.batch / s:.1f} |", flush=True)


if __name__ == "__main__":
    main()
