"""Copy a trained model into models/ for the page and the CLI: training-only buffers dropped,
optionally stored as f16, listed in models/index.json (with its SHA-256 and size) and described
by a model card in models/NAME.md.

    python3 train/ship.py train/out/natural-64/model.safetensors --name natural-64 --kind vqvae \\
        --f16 --description "..." --card-extra docs-snippet.md [--default]
    python3 train/ship.py --reindex     # refresh every entry's token fields from its file

A tokenizer's entry says what its tokens cost, for the page's picker and the ladder table:
`tokens` (the latent grid of a 16×64×64 clip), `code_bits` and `bits_per_pixel`.
"""

import argparse
import hashlib
import json
import math
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from safetensors import safe_open

ROOT = Path(__file__).resolve().parent.parent
TRAINING_ONLY = ("codebook.N", "codebook.z_avg", "num_batches_tracked")


def token_fields(meta):
    """What a 16×64×64 clip costs in tokens under a VQ-VAE's hyperparameters (its metadata)."""
    stride = [int(d) for d in meta["downsample"].split(",")]
    grid = [n // d for n, d in zip((16, 64, 64), stride)]
    bits = math.ceil(math.log2(int(meta["n_codes"])))
    return {"tokens": grid, "code_bits": bits, "bits_per_pixel": round(math.prod(grid) * bits / (16 * 64 * 64), 4)}


def reindex(index_path):
    index = json.loads(index_path.read_text())
    for entry in index["vqvae"]:
        with safe_open(str(ROOT / entry["file"]), "np") as f:
            entry.update(token_fields(f.metadata()))
    index_path.write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")
    print(f"updated {index_path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("source", type=Path, nargs="?")
    ap.add_argument("--reindex", action="store_true", help="only refresh the token fields of the index's tokenizers")
    ap.add_argument("--name")
    ap.add_argument("--kind", choices=["vqvae", "prior"])
    ap.add_argument("--f16", action="store_true", help="store floats as f16 (the engine computes in f32)")
    ap.add_argument("--description")
    ap.add_argument("--card", type=Path, help="markdown for the model card (data, steps, hardware, metrics)")
    ap.add_argument("--default", action="store_true", help="make it the page's default model")
    ap.add_argument("--temperature", type=float, help="a prior's suggested sampling temperature (the page starts with it)")
    ap.add_argument("--top-k", type=int, help="a prior's suggested top-k")
    ap.add_argument("--trained-on", help="a prior's training data in a line, shown in the page's generation panel "
                    "(e.g. \"Moving MNIST: 8,000 clips of two handwritten digits ...\")")
    ap.add_argument("--vqvae-id", help="a prior's tokenizer (the index id of the VQ-VAE it was trained over): the page "
                    "pairs them, so that Continue this clip uses the prior of the clip's tokens")
    args = ap.parse_args()
    if args.reindex:
        return reindex(ROOT / "models" / "index.json")
    if not (args.source and args.name and args.kind and args.description):
        ap.error("source, --name, --kind and --description are needed to ship a model")
    if args.kind == "prior" and not args.trained_on:
        ap.error("a prior needs --trained-on: the generation panel says what it was trained on")

    with safe_open(str(args.source), "np") as f:
        meta = f.metadata()
    tensors = {k: v for k, v in load_file(str(args.source)).items() if not any(k.endswith(t) for t in TRAINING_ONLY)}
    if args.f16:
        tensors = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in tensors.items()}
    out = ROOT / "models" / f"{args.name}.safetensors"
    save_file(tensors, str(out), metadata=meta)
    data = out.read_bytes()

    index_path = ROOT / "models" / "index.json"
    index = json.loads(index_path.read_text())
    entry = {"id": args.name, "file": f"models/{out.name}", "sha256": hashlib.sha256(data).hexdigest(),
             "bytes": len(data), "description": args.description}
    if args.kind == "prior":
        entry["trained_on"] = args.trained_on
    if args.kind == "vqvae":
        entry.update(token_fields(meta))
    if args.kind == "prior" and args.vqvae_id:
        entry["vqvae"] = args.vqvae_id
    if args.kind == "prior" and (args.temperature or args.top_k):
        entry["sampling"] = {"temperature": args.temperature or 1.0, "top_k": args.top_k or 0}
    if args.card:
        entry["card"] = f"models/{args.name}.md"
        (ROOT / "models" / f"{args.name}.md").write_text(args.card.read_text())
    index[args.kind] = [e for e in index[args.kind] if e["id"] != args.name] + [entry]
    if args.default and args.kind == "vqvae":
        index["default"] = args.name
    index["vqvae"].sort(key=lambda e: e["id"] != index["default"])  # the default first in the picker
    if args.kind == "prior":  # the trained prior first in the page's list
        index["prior"].sort(key=lambda e: e["id"] != args.name)
    index_path.write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {out} ({len(data) / 1e6:.2f} MB) and updated {index_path}")


if __name__ == "__main__":
    main()
