"""Train a VideoGPT VQ-VAE with the reference model in videogpt_ref (VideoGPT's recipe: EMA codebook
with data initialisation and dead-code restarts, reconstruction MSE / 0.06, commitment 0.25, Adam
3e-4), on a CUDA GPU when there is one and on the CPU otherwise.

    python3 train/data.py --out train/out/natural-64.npz
    python3 train/train_vqvae.py --data train/out/natural-64.npz --out train/out/natural-64 \\
        --n-hiddens 64 --n-res-layers 2 --embedding-dim 64 --n-codes 1024 --minutes 60

Resumable: `--out` holds `checkpoint.pt` (model, optimiser, step, RNG); running the same command
again continues from it, on either device. Every `--save-every` steps the model is also written as
`model.safetensors` (VideoGPT keys, hparams in the metadata), loadable by `videogpt`.

The recipe the pilots chose (docs/training.md) adds a warm start and a cooldown to that:
    python3 train/train_vqvae.py --data train/out/natural-64.npz --init models/natural-64.safetensors \\
        --out train/out/natural-64-run4 --n-hiddens 64 --n-res-layers 2 --embedding-dim 64 --n-codes 1024 \\
        --batch 8 --lr 3e-4 --cooldown 0.15 --minutes 100 --eval-every 250
`--sources` samples clips on the fly from natural.py's decoded sources (antialiased resize, balanced
sources); `--init` warm-starts from shipped weights (f16 is widened; the codebook's EMA state is
rebuilt); `--cooldown F` decays the learning rate linearly to 0 over the run's last fraction F and
first saves the weights before it as `stable.safetensors`, the next run's starting point.
`--eval-every` logs validation PSNR (held-out sources) and the test clips' PSNR, both per frame on
uint8 output, as the engine measures.
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
from dist import Ranks, globalise_batchnorm  # noqa: E402
from runs import add_run_arguments, bf16_pays, device_for  # noqa: E402
from videogpt_ref.vqvae import VQVAE, VQVAEArgs, save_vqvae  # noqa: E402


def batches(clips, batch, rng, crop=None):
    """Random clips, random horizontal flips (and a random crop×crop window of each, if asked), to
    B×3×T×H×W in [-0.5, 0.5]."""
    while True:
        idx = rng.integers(0, len(clips), batch)
        x = clips[idx]
        if crop and crop < x.shape[2]:
            ys, xs = rng.integers(0, x.shape[2] - crop + 1, batch), rng.integers(0, x.shape[3] - crop + 1, batch)
            x = np.stack([c[:, y:y + crop, x0:x0 + crop] for c, y, x0 in zip(x, ys, xs)])
        if x.shape[-1] == 1:  # greyscale data (Moving MNIST): the VQ-VAE takes RGB
            x = np.repeat(x, 3, axis=-1)
        flip = rng.random(batch) < 0.5
        x[flip] = x[flip][:, :, :, ::-1]
        yield torch.from_numpy(np.ascontiguousarray(x)).permute(0, 4, 1, 2, 3).float() / 255.0 - 0.5


def warm_start(model, path, vectors_per_step):
    """Shipped weights (maybe f16, without the codebook's training buffers) into `model`."""
    from safetensors.torch import load_file
    sd = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
    cb = model.codebook
    shipped = sd["codebook.embeddings"]
    if shipped.shape[0] * 2 == cb.n_codes:  # split every code in two: a copy and a nudged copy
        noise = torch.randn_like(shipped) * 1e-3 * shipped.std()
        sd["codebook.embeddings"] = torch.cat([shipped, shipped + noise])
        for k in ("codebook.N", "codebook.z_avg"):
            sd.pop(k, None)  # rebuilt below from the split codes
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected and all(k in ("codebook.N", "codebook.z_avg") or k.endswith("num_batches_tracked")
                                  for k in missing), (missing, unexpected)
    if "codebook.N" in missing:  # every code as used as the average: none restarted at once
        cb.N.data.fill_(vectors_per_step / cb.n_codes)
        cb.z_avg.data.copy_(cb.embeddings * cb.N[:, None])
    cb._need_init = False


def lr_at(args, step, start_step, frac):
    """Linear warmup over the run's first `--warmup` steps, constant, then linear to 0 over the last
    `--cooldown` fraction of the run (by steps or by minutes, whichever bounds it)."""
    lr = args.lr * min(1.0, (step - start_step + 1) / args.warmup) if args.warmup else args.lr
    if args.cooldown and frac > 1 - args.cooldown:
        lr *= max(0.0, (1 - frac) / args.cooldown)
    return lr


def psnr(x, y):
    mse = ((x - y) ** 2).mean().item()
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="v1: an .npz of pre-cut clips from train/data.py")
    ap.add_argument("--sources", type=Path, help="v2: natural.py's decoded sources, sampled on the fly")
    ap.add_argument("--exclude", nargs="*", default=[], help="v1: leave out the clips of these sources (pilots)")
    ap.add_argument("--init", type=Path, help="warm start from these weights (a fresh optimiser)")
    ap.add_argument("--optim", choices=["adam", "adamw", "sgd"], default="adam",
                    help="sgd (momentum 0.9) is for train/tests/test_ddp.py: Adam turns float-order noise in "
                         "a near-zero gradient into a full-size step, so runs can only be compared under SGD")
    ap.add_argument("--warmup", type=int, default=0, help="linear warmup steps at the start of this run")
    ap.add_argument("--cooldown", type=float, default=0.0, help="fraction of this run that decays the lr to 0")
    ap.add_argument("--clip-grad", type=float, default=None)
    ap.add_argument("--aa-share", type=float, default=1.0, help="v2: share of clips resized with antialiasing")
    ap.add_argument("--photo-share", type=float, default=0.35, help="v2: share of clips made from photos")
    ap.add_argument("--eval-every", type=int, default=0, help="log validation and test PSNR every N steps")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-hiddens", type=int, default=240)
    ap.add_argument("--n-res-layers", type=int, default=4)
    ap.add_argument("--embedding-dim", type=int, default=256)
    ap.add_argument("--n-codes", type=int, default=2048)
    ap.add_argument("--downsample", default="4,4,4")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=None, help="train on random crop×crop windows (the model has no "
                    "position embeddings); validation and test stay full size")
    ap.add_argument("--precision", choices=["auto", "bf16", "f32"], default="auto",
                    help="the forward pass in bf16 autocast (f32 master weights) or f32; auto: bf16 on a CPU with "
                    "AVX-512 BF16 or AMX and on a CUDA GPU with bf16, where it is 1.33x the clips/s at the same "
                    "validation PSNR a step (docs/training.md), else f32")
    ap.add_argument("--bf16", action="store_true", help="the same as --precision bf16")
    ap.add_argument("--decoder-only", action="store_true", help="train post_vq_conv and the decoder only: the "
                    "encoder (its BatchNorm statistics too) and the codebook stay as --init has them, so every clip "
                    "keeps its tokens and a prior trained over them stays valid")
    ap.add_argument("--freeze-codebook", type=int, default=0, help="no EMA updates or restarts for this many "
                    "steps at the start of the run (a warm start's decoder adapts to the codes first)")
    add_run_arguments(ap, 200_000, "stop after this many steps in all")
    args = ap.parse_args()
    device, hardware = device_for(args)
    bf16 = bf16_pays(device, "bf16" if args.bf16 else args.precision)
    hardware += ", bf16 autocast" if bf16 else ", f32"
    ranks = Ranks(device)
    say = print if ranks.main else (lambda *a, **k: None)  # one process prints, logs and writes

    import natural
    sources = natural.Sources(args.sources) if args.sources else None
    if sources:
        clips, t, res = None, 16, 64
        n_data = f"{len(sources.videos)} videos and {len(sources.photos)} photos"
    else:
        data = np.load(args.data)
        clips = data["clips"]
        t, res = clips.shape[1], clips.shape[2]
        if args.exclude:
            clips = natural.v1_clips_without(data, args.exclude)
        n_data = f"{len(clips)} clips"
    val = test = None
    if args.eval_every and clips is not None and "test" in data.files:
        # Moving MNIST: its last 256 training clips validate (held out from training here), its
        # test clips (t10k digits) test; greyscale repeated to RGB, as the engine reads it
        rgb = lambda c: np.repeat(c, 3, axis=-1) if c.shape[-1] == 1 else c
        val, test, clips = rgb(clips[-256:]), rgb(data["test"]), clips[:-256]
        n_data = f"{len(clips)} clips (256 more held out for validation)"
    elif args.eval_every:
        val = natural.validation_clips(natural.Sources(args.sources or Path("train/out/sources")))
        test = natural.test_windows()
    margs = VQVAEArgs(embedding_dim=args.embedding_dim, n_codes=args.n_codes, n_hiddens=args.n_hiddens,
                      n_res_layers=args.n_res_layers, downsample=tuple(int(d) for d in args.downsample.split(",")),
                      resolution=res, sequence_length=t)
    torch.manual_seed(args.seed)
    model = VQVAE(margs).to(device)
    if ranks.distributed:
        globalise_batchnorm(model)
        model.codebook.ranks = ranks
    if args.init:
        crop = args.crop or res
        warm_start(model, args.init, args.batch * (t // margs.downsample[0]) * (crop // margs.downsample[1]) ** 2)
    if args.decoder_only and not args.init:
        raise SystemExit("--decoder-only fine-tunes a trained tokenizer's decoder: give its weights with --init")
    # --decoder-only: the parts that decide a clip's tokens are not trained, and stay in eval mode
    # (BatchNorm keeps its running statistics) whatever mode the rest is in
    tokenizing = (model.encoder, model.pre_vq_conv, model.codebook) if args.decoder_only else ()
    for part in tokenizing:
        part.requires_grad_(False)

    def train_mode():
        model.train()
        for part in tokenizing:
            part.eval()

    trainable = [p for p in model.parameters() if p.requires_grad]
    if args.optim == "adamw":  # decay on matrices and kernels only
        decay = [p for p in trainable if p.dim() >= 2]
        rest = [p for p in trainable if p.dim() < 2]
        opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.01), dict(params=rest, weight_decay=0.0)],
                                lr=args.lr, betas=(0.9, 0.99))
    elif args.optim == "sgd":
        opt = torch.optim.SGD(trainable, lr=args.lr, momentum=0.9)
    else:
        opt = torch.optim.Adam(trainable, lr=args.lr, betas=(0.9, 0.999))
    rng = np.random.default_rng(args.seed)
    if ranks.main:
        args.out.mkdir(parents=True, exist_ok=True)
    ranks.barrier()
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
        if ranks.main:
            log_path.write_text("".join(json.dumps(row) + "\n" for row in history))
        say(f"resumed from step {step} ({trained_s / 60:.1f} min trained)", flush=True)
    n_params = sum(p.numel() for p in model.parameters())
    trainer = ranks.wrap(model)  # DDP when there are several processes; `model` stays the one saved
    say(f"{n_params / 1e6:.2f} M parameters, {n_data} for {t}×{res}×{res} clips, on {hardware}", flush=True)
    if args.decoder_only:
        say(f"decoder only: {sum(p.numel() for p in trainable) / 1e6:.2f} M parameters trained; the encoder and "
            "codebook (every clip's tokens) stay as --init has them", flush=True)
    start_step, stable_saved = step, False

    plain_args = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}

    def save():
        if not ranks.main:
            return
        torch.save(dict(model=model.state_dict(), opt=opt.state_dict(), step=step, trained_s=trained_s, history=history,
                        hardware=hardware, args=plain_args), ckpt_path)
        save_vqvae(model, args.out / "model.safetensors")
        (args.out / "train.json").write_text(json.dumps(dict(step=step, minutes=trained_s / 60, hardware=hardware,
                                                             parameters=n_params, data=n_data, args=plain_args,
                                                             last=history[-1] if history else None), indent=2))

    train_mode()
    stream = (natural.batches(sources, args.batch, rng, args.crop or res, args.photo_share, args.aa_share) if sources
              else batches(clips, args.batch, rng, args.crop))

    def progress():  # how far through this run, by steps or minutes, whichever ends it first
        by_steps = (step - start_step) / max(1, args.steps - start_step)
        by_time = (time.time() - run_started) / (args.minutes * 60) if args.minutes else 0.0
        return max(by_steps, by_time)

    def evaluate():
        scores = dict(val_psnr=round(natural.frame_psnr(model, val), 3), test_psnr=round(natural.frame_psnr(model, test), 3))
        train_mode()  # frame_psnr restores plain model.train()
        return scores

    if args.eval_every and step == start_step and ranks.main:
        row = dict(step=step, minutes=round(trained_s / 60, 2), **evaluate())
        print(f"start: validation {row['val_psnr']:.2f} dB  test {row['test_psnr']:.2f} dB", flush=True)
        history.append(row)
    started = run_started = time.time()  # `started` restarts at each save; the budget does not
    acc = dict(loss=0.0, psnr=0.0, perplexity=0.0, n=0)
    window_started = time.time()
    while step < args.steps:
        # rank 0's clock decides for everyone: the schedule and the stop must agree across ranks
        frac, out_of_time = ranks.decide(progress(), args.minutes is not None and time.time() - run_started >= args.minutes * 60)
        if out_of_time:
            break
        if args.cooldown and frac > 1 - args.cooldown and not stable_saved:
            if ranks.main:
                save_vqvae(model, args.out / "stable.safetensors")  # before the decay: the next run starts here
            stable_saved = True
        lr = lr_at(args, step, start_step, frac)
        for group in opt.param_groups:
            group["lr"] = lr
        model.codebook.frozen = args.decoder_only or step - start_step < args.freeze_codebook
        x = ranks.share(next(stream)).to(device)  # the global batch's share of this rank
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            recon_loss, x_recon, vq = trainer(x)
            loss = (recon_loss + vq["commitment_loss"]).float()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if args.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad)
        opt.step()
        step += 1
        acc["loss"] += loss.item()
        acc["psnr"] += psnr(x_recon.detach().clamp(-0.5, 0.5), x)
        acc["perplexity"] += vq["perplexity"].item()
        acc["n"] += 1
        if step % args.log_every == 0 and ranks.main:  # rank 0's share of the batch
            n = acc.pop("n")
            used = int((model.codebook.N >= 1).sum().item())
            elapsed = trained_s + time.time() - started
            row = dict(step=step, minutes=round(elapsed / 60, 2), **{k: round(v / n, 4) for k, v in acc.items()}, codes_used=used,
                       codes_restarted=model.codebook.restarted,
                       lr=lr, clips_per_s=round(n * args.batch / max(1e-9, time.time() - window_started), 2),
                       threads=torch.get_num_threads(), loadavg=round(__import__("os").getloadavg()[0], 2))
            if args.eval_every and step % args.eval_every == 0:
                row |= evaluate()
            history.append(row)
            with open(log_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            window_started = time.time()
            bar = "#" * int(30 * step / args.steps)
            print(f"[{bar:<30}] step {step}  loss {row['loss']:.4f}  PSNR {row['psnr']:.2f} dB  perplexity {row['perplexity']:.0f}  "
                  f"codes used {used}/{args.n_codes}  {elapsed / 60:.1f} min"
                  + (f"  val {row['val_psnr']:.2f} test {row['test_psnr']:.2f}" if "val_psnr" in row else ""), flush=True)
            acc = dict(loss=0.0, psnr=0.0, perplexity=0.0, n=0)
        if step % args.save_every == 0:
            trained_s += time.time() - started
            started = time.time()
            save()
    trained_s += time.time() - started
    if args.eval_every and ranks.main:
        history.append(dict(step=step, minutes=round(trained_s / 60, 2), final=True, **evaluate()))
        print(f"end: validation {history[-1]['val_psnr']:.2f} dB  test {history[-1]['test_psnr']:.2f} dB", flush=True)
    save()
    say(f"stopped at step {step}; wrote {args.out / 'model.safetensors'}", flush=True)
    ranks.barrier()
    ranks.close()


if __name__ == "__main__":
    main()
