"""A prior with a newer decoder: replace the VQ-VAE a prior file holds (under `vqvae.`) by a
tokenizer whose decoder was fine-tuned afterwards (`train_vqvae.py --decoder-only`), so that the
pair samples the same tokens and decodes them with the better decoder.

    python3 train/pair.py PRIOR.safetensors TOKENIZER.safetensors OUT.safetensors

Refused unless every weight that decides a clip's tokens (the encoder with its BatchNorm
statistics, pre_vq_conv, the codebook) is bit for bit the one the prior was trained over, and the
hyperparameters agree: otherwise the prior's tokens would mean other codes.
"""

import argparse
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

TOKENIZING = ("encoder.", "pre_vq_conv.", "codebook.embeddings")


def read(path):
    with safe_open(str(path), "pt") as f:
        return f.metadata() or {}, {k: f.get_tensor(k) for k in f.keys()}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prior", type=Path)
    ap.add_argument("tokenizer", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    prior_meta, prior = read(args.prior)
    vq_meta, vq = read(args.tokenizer)
    inside = {k[len("vqvae."):]: v for k, v in prior.items() if k.startswith("vqvae.")}
    if not inside:
        sys.exit(f"{args.prior} holds no VQ-VAE (no vqvae.* tensors): is it a prior?")
    for key, value in vq_meta.items():
        if key != "format" and prior_meta.get(f"vqvae.{key}") != value:
            sys.exit(f"{args.tokenizer}'s {key} is {value}, the prior's VQ-VAE has {prior_meta.get(f'vqvae.{key}')}")
    if set(inside) - {k for k in inside if k.startswith(("codebook.N", "codebook.z_avg"))} - set(vq):
        sys.exit(f"{args.tokenizer} lacks tensors the prior's VQ-VAE has: {sorted(set(inside) - set(vq))[:5]}")
    differ = [k for k in inside if k.startswith(TOKENIZING) and k in vq and not torch.equal(inside[k].float(), vq[k].float())]
    if differ:
        sys.exit(f"{args.tokenizer} tokenizes differently from the prior's VQ-VAE ({len(differ)} tensors differ, e.g. "
                 f"{differ[0]}): only a decoder fine-tuned with --decoder-only can be paired; retrain the prior instead")
    out = {k: v for k, v in prior.items() if not k.startswith("vqvae.")}
    out.update({f"vqvae.{k}": v.to(inside[k].dtype) if k in inside else v for k, v in vq.items()})
    save_file(out, str(args.out), metadata=prior_meta)
    changed = sum(1 for k in vq if k in inside and not torch.equal(inside[k].float(), vq[k].float()))
    print(f"wrote {args.out}: the prior over {args.tokenizer.name}'s tokens, {changed} decoder tensors replaced")


if __name__ == "__main__":
    main()
