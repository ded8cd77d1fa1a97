"""Fixtures for `videogpt convert` (tests/checkpoint.rs): VideoGPT checkpoints as PyTorch Lightning
writes them, in torch's zip format and its legacy format, made from our reference modules.

A Lightning `.ckpt` is `torch.save` of a dict: `state_dict` (every parameter and buffer),
`hyper_parameters` ({'args': argparse.Namespace(...)}, what VideoGPT's `save_hyperparameters()`
stores; here once as a plain dict and once as Lightning's AttributeDict), `callbacks` keyed by the
ModelCheckpoint *class*, `optimizer_states` (Adam), `lr_schedulers`, epoch and step. Lightning is
not installed here: its two classes are stood in by modules registered under Lightning's own
names, so the pickles name exactly the globals a real checkpoint names.

Written to tests/fixtures/:
- ckpt_vqvae.{ckpt,legacy.ckpt} and ckpt_vqvae.safetensors (the same weights by save_vqvae)
- ckpt_prior.{ckpt,legacy.ckpt} and ckpt_prior.safetensors: a sparse prior with its VQ-VAE
- ckpt_frame.{ckpt,legacy.ckpt} and ckpt_frame_golden.safetensors: a frame-conditioned prior.
  Its ResNet-34 has 21 M weights; they are strided views (stride 0 in the middle dimensions,
  storage offsets, overlapping rows) of two small shared storages, so the file stays small and
  the reader's stride, offset and shared-storage handling are exercised. PyTorch's logits and
  bits per token on encoded clips are the goldens.
- ckpt_evil_system.ckpt (a REDUCE of os.system) and ckpt_evil_eval.legacy.ckpt (builtins.eval):
  torch.save of objects whose __reduce__ runs a command; the reader must refuse them.

    python3 train/make_checkpoint_fixtures.py
"""
import argparse
import os
import sys
import types
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import save_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from videogpt_ref.gpt import GPTArgs, VideoGPT, save_gpt  # noqa: E402
from videogpt_ref.vqvae import VQVAE, VQVAEArgs, save_vqvae  # noqa: E402

FIX = Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def lightning_stand_ins():
    """`pytorch_lightning.callbacks.model_checkpoint.ModelCheckpoint` and
    `pytorch_lightning.utilities.parsing.AttributeDict`, importable under those names."""
    mods = {}
    for name in ["pytorch_lightning", "pytorch_lightning.callbacks", "pytorch_lightning.callbacks.model_checkpoint",
                 "pytorch_lightning.utilities", "pytorch_lightning.utilities.parsing"]:
        mods[name] = sys.modules[name] = types.ModuleType(name)
    ModelCheckpoint = type("ModelCheckpoint", (), {"__module__": "pytorch_lightning.callbacks.model_checkpoint"})
    AttributeDict = type("AttributeDict", (dict,), {"__module__": "pytorch_lightning.utilities.parsing"})
    mods["pytorch_lightning.callbacks.model_checkpoint"].ModelCheckpoint = ModelCheckpoint
    mods["pytorch_lightning.utilities.parsing"].AttributeDict = AttributeDict
    return ModelCheckpoint, AttributeDict


ModelCheckpoint, AttributeDict = lightning_stand_ins()


def lightning(state_dict, args, opt, step, attribute_dict):
    hp = {"args": args}
    return {
        "epoch": 3,
        "global_step": step,
        "pytorch-lightning_version": "1.2.10",
        "state_dict": state_dict,
        "callbacks": {ModelCheckpoint: {"monitor": "val/recon_loss", "best_model_score": torch.tensor(0.0123),
                                        "best_model_path": "lightning_logs/version_0/checkpoints/epoch=3.ckpt",
                                        "current_score": np.float64(0.0123)}},
        "optimizer_states": [opt.state_dict()],
        "lr_schedulers": [],
        "hparams_name": "args",
        "hyper_parameters": AttributeDict(hp) if attribute_dict else hp,
    }


def save_both(obj, stem):
    torch.save(obj, FIX / f"{stem}.ckpt")
    torch.save(obj, FIX / f"{stem}.legacy.ckpt", _use_new_zipfile_serialization=False)


def clips(n, t, res, gen):
    """Blobs moving over noise: enough structure that the codebook's data init uses many codes."""
    x = torch.rand(n, 3, t, res, res, generator=gen) * 0.3 - 0.15
    yy, xx = torch.meshgrid(torch.arange(res), torch.arange(res), indexing="ij")
    for i in range(n):
        for f in range(t):
            cy, cx = (i * 3 + f) % res, (i * 5 + 2 * f) % res
            x[i, :, f] += 0.4 * torch.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 6.0)
    return x.clamp(-0.5, 0.5)


def vqvae_namespace(a: VQVAEArgs):
    # upstream train_vqvae.py's arguments, as its Namespace holds them
    return argparse.Namespace(embedding_dim=a.embedding_dim, n_codes=a.n_codes, n_hiddens=a.n_hiddens, n_res_layers=a.n_res_layers,
                              downsample=tuple(a.downsample), data_path="datasets/bair.hdf5", sequence_length=a.sequence_length,
                              resolution=a.resolution, batch_size=32, num_workers=8, gpus=1, max_steps=200000)


def gpt_namespace(g: GPTArgs, v: VQVAEArgs):
    return argparse.Namespace(vqvae="bair_stride4x2x2", n_cond_frames=g.n_cond_frames, class_cond=False, hidden_dim=g.hidden_dim,
                              heads=g.heads, layers=g.layers, dropout=0.2, attn_type=g.attn_type, attn_dropout=0.3,
                              data_path="datasets/bair.hdf5", sequence_length=v.sequence_length, resolution=v.resolution,
                              batch_size=32, num_workers=8, gpus=1, class_cond_dim=None)


def train_steps(model, params, loss_fn, steps, lr=1e-3):
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = loss_fn()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return opt


def strided_views(model, gen):
    """The ResNet's tensors as views of two small shared storages (see the module docstring)."""
    signed = torch.randn(8192, generator=gen) * 0.05
    positive = torch.rand(8192, generator=gen) + 0.5
    sd = model.state_dict()
    for i, (k, v) in enumerate((k, v) for k, v in sd.items() if k.startswith("resnet.")):
        if not v.is_floating_point():
            continue
        base = positive if k.endswith("weight") and v.dim() == 1 else signed
        s = v.shape
        stride = [0] * len(s)
        stride[-1] = 1
        if len(s) >= 2:
            stride[-2], stride[0] = 3, 7
        reach = sum((d - 1) * st for d, st in zip(s, stride))
        offset = (i * 37) % (8192 - reach)
        sd[k] = base.as_strided(tuple(s), tuple(stride), offset)
    model.load_state_dict(sd)
    return sd


def main():
    FIX.mkdir(exist_ok=True)
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    va = VQVAEArgs(embedding_dim=8, n_codes=32, n_hiddens=8, n_res_layers=1, downsample=(4, 4, 4), resolution=16, sequence_length=16)
    data = clips(4, 16, 16, gen)

    # the VQ-VAE: a few training steps, so that the codebook's EMA buffers, BatchNorm's running
    # statistics and Adam's moments are all real
    vq = VQVAE(va)
    vq.train()

    def vq_loss():
        recon_loss, _, q = vq(data)
        return recon_loss + q["commitment_loss"]

    opt = train_steps(vq, vq.parameters(), vq_loss, 3)
    vq.eval()
    vq.codebook._need_init = False
    with torch.no_grad():  # codes from the latents themselves, so that the clips use many of them
        z = vq.pre_vq_conv(vq.encoder(data)).movedim(1, -1).reshape(-1, va.embedding_dim)
        pick = z[torch.randperm(len(z), generator=gen)[:va.n_codes]]
        vq.codebook.embeddings.copy_(pick)
        vq.codebook.z_avg.copy_(pick * vq.codebook.N[:, None])
    save_vqvae(vq, FIX / "ckpt_vqvae.safetensors")
    save_both(lightning(vq.state_dict(), vqvae_namespace(va), opt, 3, attribute_dict=False), "ckpt_vqvae")

    # a sparse prior over it
    ga = GPTArgs(hidden_dim=24, heads=2, layers=2, attn_type="sparse")
    gpt = VideoGPT(ga, vq)
    gpt.fc_out.weight.data.normal_(std=0.5, generator=gen)  # zero in VideoGPT: the logits would all be 0
    codes = vq.encode(data).long()
    params = [p for n, p in gpt.named_parameters() if not n.startswith("vqvae.")]
    opt = train_steps(gpt, params, lambda: F.cross_entropy(gpt.logits(codes).transpose(1, 2), codes.view(codes.shape[0], -1)), 2)
    gpt.eval()
    save_gpt(gpt, FIX / "ckpt_prior.safetensors")
    save_both(lightning(gpt.state_dict(), gpt_namespace(ga, va), opt, 2, attribute_dict=True), "ckpt_prior")

    # a frame-conditioned prior (full attention, one conditioning frame)
    fa = GPTArgs(hidden_dim=24, heads=2, layers=1, attn_type="full", n_cond_frames=1)
    fgpt = VideoGPT(fa, vq)
    fgpt.fc_out.weight.data.normal_(std=0.5, generator=gen)
    sd = strided_views(fgpt, gen)
    fgpt.eval()
    frames = data[:, :, :1]
    with torch.no_grad():
        golden = {"codes": codes.numpy().astype(np.int32), "frames": data[:, :, :1].numpy(),
                  "logits": fgpt.logits(codes, {"frame_cond": frames}).numpy(),
                  "bits_per_token": fgpt.bits_per_token(codes, {"frame_cond": frames}).numpy()}
    save_file({k: np.ascontiguousarray(v) for k, v in golden.items()}, str(FIX / "ckpt_frame_golden.safetensors"))
    opt = torch.optim.Adam([p for n, p in fgpt.named_parameters() if not n.startswith(("vqvae.", "resnet."))])
    save_both(lightning(sd, gpt_namespace(fa, va), opt, 0, attribute_dict=False), "ckpt_frame")

    # hostile checkpoints: what torch.load(weights_only=False) would run
    class System:
        def __reduce__(self):
            return (os.system, ("touch /tmp/videogpt-pwned",))

    class Eval:
        def __reduce__(self):
            return (eval, ("__import__('os').system('touch /tmp/videogpt-pwned')",))

    torch.save({"state_dict": {"codebook.embeddings": torch.zeros(4, 2)}, "hyper_parameters": {"args": System()}}, FIX / "ckpt_evil_system.ckpt")
    torch.save({"state_dict": {"x": Eval()}}, FIX / "ckpt_evil_eval.legacy.ckpt", _use_new_zipfile_serialization=False)
    for p in sorted(FIX.glob("ckpt_*")):
        print(f"{p.name:32s} {p.stat().st_size:>9,d} bytes")
    print("frame-conditioned bits/token", golden["bits_per_token"])


if __name__ == "__main__":
    main()
