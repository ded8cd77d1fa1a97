"""Train a VideoGPT prior over a trained VQ-VAE's codes (spec §3.1: Adam 3e-4 with cosine decay,
cross-entropy over every position), on a CUDA GPU when there is one and on the CPU otherwise.

    python3 train/train_gpt.py --data train/out/mmnist.npz --vqvae train/out/mmnist-vqvae/model.safetensors \\
        --out train/out/mmnist-gpt --hidden-dim 192 --heads 4 --layers 4 --attn-type sparse --minutes 30

The clips are encoded once by the frozen VQ-VAE; `--out` gets `checkpoint.pt` (resumable) and
`model.safetensors`: the GPT with its VQ-VAE under `vqvae.`, VideoGPT's own layout, which
`videogpt sample` and the web page load. Test bits per token are logged on the data's `test` clips.

A dataset tokenized by the engine (any number of machines, `videogpt encode --shard i/n`) trains
without encoding anything here:

    videogpt encode --model M.safetensors --input videos/ --output tokens/ --shard 0/2   # and 1/2
    python3 train/train_gpt.py --tokens tokens/ --vqvae M.safetensors --out train/out/prior ...

Under `torchrun --nproc_per_node N` the same command trains on N processes (train/dist.py).
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from dist import Ranks  # noqa: E402
from runs import add_run_arguments, bf16_pays, device_for  # noqa: E402
from videogpt_ref import load_vqvae  # noqa: E402
from videogpt_ref.gpt import GPTArgs, VideoGPT, save_gpt  # noqa: E402


class NextTokenLoss(torch.nn.Module):
    """The training objective as a module's forward, which DistributedDataParallel wraps (it syncs
    gradients for what runs inside forward): cross-entropy of every position, mean over the batch."""

    def __init__(self, gpt, bf16=False):
        super().__init__()
        self.gpt, self.bf16 = gpt, bf16

    def forward(self, x):
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.gpt.logits(x)
        return F.cross_entropy(logits.float().transpose(1, 2), x.view(x.shape[0], -1))


def optimizer(params, args):
    """Adam (VideoGPT's), or AdamW with decoupled weight decay on the matrices only (nanoGPT's
    split: LayerNorm gains, biases and the start token are not decayed)."""
    if args.optimizer == "adam":
        return torch.optim.Adam([p for _, p in params], lr=args.lr)
    groups = [dict(params=[p for _, p in params if p.dim() >= 2], weight_decay=args.weight_decay),
              dict(params=[p for _, p in params if p.dim() < 2], weight_decay=0.0)]
    return torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.95))


def fit_position_embeddings(sd, target):
    """A prior warm-started over another latent grid (a tokenizer of another stride: 4×16×16 →
    8×16×16) keeps every weight but the position embedding along the axes whose length changed,
    which is resampled to the new length (nearest: new position i takes old position
    ⌊i·old/new⌋, the one covering the same frames). Everything else must match."""
    out = dict(sd)
    for key, value in sd.items():
        want = target[key].shape if key in target else None
        if want is None or value.shape == want or ".pos_embd.emb.d_" not in key or value.shape[1:] != want[1:]:
            continue
        out[key] = value[torch.arange(want[0]) * value.shape[0] // want[0]]
        print(f"{key}: {value.shape[0]} positions resampled to {want[0]}", flush=True)
    return out


def read_token_folders(folders, latent_shape):
    """Every window of every clip the manifests in `folders` list (`videogpt encode` over a dataset,
    any number of shards), as one N×T'×H'×W' tensor; windows of another grid (a clip shorter than
    one window) and clips that failed to encode are left out, and counted."""
    windows, other, failed = [], 0, 0
    for folder in folders:
        manifests = sorted(Path(folder).glob("manifest*.jsonl"))
        if not manifests:
            raise SystemExit(f"{folder} has no manifest*.jsonl: make it with `videogpt encode --input FOLDER --output {folder}`")
        for manifest in manifests:
            for line in manifest.read_text().splitlines():
                row = json.loads(line)
                if "tokens" not in row:
                    failed += 1
                    continue
                t = np.load(Path(folder) / row["tokens"])
                if t.ndim == 3:  # one window is written T'×H'×W'
                    t = t[None]
                if tuple(t.shape[1:]) != tuple(latent_shape):
                    other += t.shape[0]
                    continue
                windows.append(torch.from_numpy(t.astype(np.int64)))
    if not windows:
        raise SystemExit(f"no token windows of {tuple(latent_shape)} in {', '.join(map(str, folders))}")
    if other or failed:
        print(f"left out {other} windows of another grid and {failed} clips that failed to encode", flush=True)
    return torch.cat(windows)


@torch.no_grad()
def encode_all(vq, clips, device, batch=32):
    out = []
    for i in range(0, len(clips), batch):
        x = clips[i:i + batch]
        if x.shape[-1] == 1:
            x = np.repeat(x, 3, axis=-1)
        x = torch.from_numpy(x).permute(0, 4, 1, 2, 3).float().to(device) / 255.0 - 0.5
        out.append(vq.encode(x).cpu())
    return torch.cat(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="clips (.npz with `clips` and `test`, and optionally `val`) that the "
                    "--vqvae encodes here")
    ap.add_argument("--tokens", type=Path, nargs="*", help="instead of --data: folders of token files from "
                    "`videogpt encode --input FOLDER --output DIR [--shard i/n]` (every manifest*.jsonl in them)")
    ap.add_argument("--test-tokens", type=Path, nargs="*", help="with --tokens: the test windows' folders "
                    "(default: the last 5 %% of the --tokens windows, held out)")
    ap.add_argument("--vqvae", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--hidden-dim", type=int, default=576)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--layers", type=int, default=8)
    ap.add_argument("--attn-type", default="sparse")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--optimizer", choices=["adam", "adamw"], default="adam",
                    help="adam: VideoGPT's; adamw: decoupled weight decay on the matrices, betas (0.9, 0.95)")
    ap.add_argument("--weight-decay", type=float, default=0.1, help="AdamW's decay of the matrices")
    ap.add_argument("--precision", choices=["auto", "bf16", "f32"], default="f32",
                    help="the forward pass in bf16 autocast (f32 master weights, f32 loss) or f32; auto: bf16 where "
                    "the hardware computes it natively (AVX-512 BF16, AMX, a CUDA GPU with bf16)")
    ap.add_argument("--sparse-kernel", choices=["auto", "blocks", "dense"], default="auto",
                    help="--attn-type sparse computed as block-sparse gathers or as a dense masked softmax (the same "
                    "result); auto: blocks in f32, dense under bf16, whichever bench_prior_step.py found faster")
    ap.add_argument("--init", type=Path, help="warm start the GPT from these weights (a shipped prior; its vqvae.* are not used)")
    add_run_arguments(ap, 100_000, "length of the cosine schedule, and the most steps")
    args = ap.parse_args()
    device, hardware = device_for(args)
    bf16 = bf16_pays(device, args.precision)
    hardware += (", bf16 autocast" if bf16 else ", f32") + f", {args.optimizer}"
    dense_sparse = args.attn_type == "sparse" and (args.sparse_kernel == "dense" or (args.sparse_kernel == "auto" and bf16))
    hardware += ", sparse attention as a dense mask" if dense_sparse else ""
    ranks = Ranks(device)
    say = print if ranks.main else (lambda *a, **k: None)  # one process prints, logs and writes
    torch.manual_seed(args.seed)

    vq = load_vqvae(args.vqvae).to(device)
    if bool(args.data) == bool(args.tokens):
        raise SystemExit("give the clips as --data FILE.npz or their tokens as --tokens FOLDER ...")
    codes_path = args.out / "codes.pt"
    if ranks.main:  # one process encodes the clips (or reads the token files); the others read its file
        args.out.mkdir(parents=True, exist_ok=True)
        if args.tokens and not codes_path.exists():
            codes = read_token_folders(args.tokens, vq.latent_shape)
            if args.test_tokens:
                test_codes = read_token_folders(args.test_tokens, vq.latent_shape)
            else:
                n_test = max(1, len(codes) // 20)
                codes, test_codes = codes[:-n_test], codes[-n_test:]
            torch.save(dict(train=codes, val=None, test=test_codes), codes_path)
            print(f"read {len(codes)} + {len(test_codes)} token windows", flush=True)
        elif not codes_path.exists():
            data = np.load(args.data)
            t0 = time.time()
            held = {k: encode_all(vq, data[k], device) if k in data.files else None for k in ("val", "test")}
            torch.save(dict(train=encode_all(vq, data["clips"], device), **held), codes_path)
            print(f"encoded {len(data['clips'])} training clips and the held-out ones in {time.time() - t0:.0f}s", flush=True)
    ranks.barrier()
    saved = torch.load(codes_path)
    codes, val_codes, test_codes = saved["train"], saved["val"], saved["test"]

    gargs = GPTArgs(hidden_dim=args.hidden_dim, heads=args.heads, layers=args.layers, attn_type=args.attn_type)
    model = VideoGPT(gargs, vq).to(device)
    # sparse attention as block-sparse gathers or as the dense masked softmax: the same allowed
    # pairs either way (test_sparse_attention.py), only the cost differs. bench_prior_step.py on a
    # 2-core EPYC: gathers save 11 % of an f32 step but cost 45 % more than the dense mask in bf16
    if dense_sparse:
        for layer in model.attn_stack.attn_nets:
            layer.attn.key_blocks = None
    if args.init:
        # the GPT's own weights; the codes it sees come from --vqvae (a retrained tokenizer keeps
        # most of its codebook, so the prior starts far from scratch)
        from safetensors.torch import load_file
        sd = {k: v.float() for k, v in load_file(str(args.init)).items() if not k.startswith("vqvae.")}
        sd = fit_position_embeddings(sd, model.state_dict())
        missing, unexpected = model.load_state_dict(sd, strict=False)
        assert not unexpected and all(k.startswith("vqvae.") for k in missing), (missing, unexpected)
    named = [(n, p) for n, p in model.named_parameters() if not n.startswith("vqvae.")]
    params = [p for _, p in named]
    opt = optimizer(named, args)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    ckpt_path = args.out / "checkpoint.pt"
    step, trained_s = 0, 0.0
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        model.load_state_dict(ck["model"])
        saved_with = ck.get("optimizer", "adam")  # checkpoints from before --optimizer were Adam's
        if saved_with != args.optimizer:
            sys.exit(f"{ckpt_path} was saved by --optimizer {saved_with}, and its moments do not fit "
                     f"--optimizer {args.optimizer}: resume with --optimizer {saved_with}, or start a new "
                     f"--out with --init from its weights")
        opt.load_state_dict(ck["opt"])
        sched.load_state_dict(ck["sched"])
        sched.T_max = args.steps  # the schedule's state carries the old length; --steps decides
        step, trained_s = ck["step"], ck["trained_s"]
        # the log may run past the checkpoint (rows logged after its save): keep the checkpoint's
        log_path = args.out / "log.jsonl"
        if log_path.exists() and ranks.main:
            rows = [r for r in log_path.read_text().splitlines() if r and json.loads(r)["step"] <= step]
            log_path.write_text("".join(r + "\n" for r in rows))
        say(f"resumed from step {step}", flush=True)
    n_params = sum(p.numel() for p in params)
    trainer = ranks.wrap(NextTokenLoss(model, bf16))  # DDP when there are several processes
    say(f"{n_params / 1e6:.2f} M parameters, {len(codes)} clips of {tuple(codes.shape[1:])} tokens, on {hardware}", flush=True)

    @torch.no_grad()
    def held_bits(held):
        model.eval()
        bits = torch.cat([model.bits_per_token(held[i:i + 16].to(device)) for i in range(0, len(held), 16)])
        model.train()
        return bits.mean().item()

    def evaluate(row):
        """`row` with the held-out bits per token: the test windows', and the validation windows' where the data has them."""
        row["test_bits"] = round(held_bits(test_codes), 4)
        if val_codes is not None:
            row["val_bits"] = round(held_bits(val_codes), 4)
        return row

    def save(test):
        if not ranks.main:
            return
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), optimizer=args.optimizer, sched=sched.state_dict(),
                        step=step, trained_s=trained_s), ckpt_path)
        save_gpt(model, args.out / "model.safetensors")
        (args.out / "train.json").write_text(json.dumps(dict(step=step, minutes=trained_s / 60, hardware=hardware, parameters=n_params,
                                                             test_bits_per_token=test, args=vars(args)), indent=2, default=str))

    rng = np.random.default_rng(args.seed + step)
    if step == 0 and ranks.main:
        row = evaluate(dict(step=0, minutes=0.0))
        print(f"start: {row}", flush=True)
        with open(args.out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
    model.train()
    started = run_started = time.time()  # `started` restarts at each save; the budget does not
    acc, n_acc, logged_at = 0.0, 0, time.time()
    while step < args.steps:
        # rank 0's clock decides when every rank stops
        _, out_of_time = ranks.decide(0.0, args.minutes is not None and time.time() - run_started >= args.minutes * 60)
        if out_of_time:
            break
        # the global batch, drawn alike on every rank; this rank's share of it
        x = ranks.share(codes[torch.from_numpy(rng.integers(0, len(codes), args.batch))]).to(device)
        loss = trainer(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        step += 1
        acc, n_acc = acc + loss.item() / math.log(2), n_acc + 1
        if step % args.log_every == 0 and ranks.main:  # rank 0's share of the batch
            elapsed = trained_s + time.time() - started
            clips_per_s = n_acc * args.batch / (time.time() - logged_at)
            print(f"step {step}  train {acc / n_acc:.3f} bits/token  lr {sched.get_last_lr()[0]:.2e}  {clips_per_s:.2f} clips/s  "
                  f"{elapsed / 60:.1f} min", flush=True)
            with open(args.out / "log.jsonl", "a") as f:
                f.write(json.dumps(dict(step=step, minutes=round(elapsed / 60, 2), train_bits=round(acc / n_acc, 4),
                                        lr=sched.get_last_lr()[0], clips_per_s=round(clips_per_s, 3),
                                        loadavg=round(os.getloadavg()[0], 2))) + "\n")
            acc, n_acc, logged_at = 0.0, 0, time.time()
        if step % args.save_every == 0:
            trained_s += time.time() - started
            started = time.time()
            if ranks.main:
                row = evaluate(dict(step=step, minutes=round(trained_s / 60, 2)))
                print(f"step {step}: {row}", flush=True)
                with open(args.out / "log.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
                save(row["test_bits"])
            logged_at = time.time()
    trained_s += time.time() - started
    t = float("nan")
    if ranks.main:
        row = evaluate(dict(step=step, minutes=round(trained_s / 60, 2)))
        with open(args.out / "log.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        t = row["test_bits"]
    save(t)
    ranks.barrier()
    ranks.close()
    say(f"stopped at step {step}: test {t:.3f} bits/token; wrote {args.out / 'model.safetensors'}", flush=True)


if __name__ == "__main__":
    main()
