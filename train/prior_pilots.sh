#!/usr/bin/env bash
# The natural-video prior's pilots (issue 27, docs/training.md): VideoGPT's GPT over natural-64's
# 4×16×16 codes, at three sizes, from scratch, for the same 10 minutes each (the CPU budget a long
# run is made of), on train/prior_data.py's clips; held-out bits per token on the validation and
# test windows decide. One arm is repeated with another seed to measure the noise.
#   python3 train/prior_data.py --out train/out/natural-prior-v1.npz
#   bash train/prior_pilots.sh ARM [ARM ...]       # rows appended to train/out/prior-pilots.jsonl
# Arms: g144x4 g144x4-seed1 g240x6 g384x8 (see below)
set -euo pipefail
cd "$(dirname "$0")/.."
data=train/out/natural-prior-v1.npz
vqvae=models/natural-64.safetensors
base=(--data "$data" --vqvae "$vqvae" --attn-type sparse --heads 4 --batch 8 --lr 6e-4 --minutes 10
      --log-every 25 --save-every 100)

record() {  # one row per arm in train/out/prior-pilots.jsonl
  python3 - "$1" "$2" <<'PY'
import json, sys, subprocess, torch
name, cfg = sys.argv[1], sys.argv[2]
hist = [json.loads(l) for l in open(f"train/out/prior-pilot-{name}/log.jsonl")]
cpu = next(l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name"))
evals = [dict(step=h["step"], minutes=h["minutes"], val=h.get("val_bits"), test=h["test_bits"]) for h in hist if "test_bits" in h]
speed = [h["clips_per_s"] for h in hist if "clips_per_s" in h]
row = dict(arm=name, config=cfg, host=cpu, torch=torch.__version__, threads=torch.get_num_threads(),
           clips_per_s=sum(speed) / max(1, len(speed)), evals=evals)
open("train/out/prior-pilots.jsonl", "a").write(json.dumps(row) + "\n")
print(json.dumps(row), flush=True)
PY
}

run() {  # run NAME ARGS...: one arm from scratch
  local name=$1; shift
  rm -rf "train/out/prior-pilot-$name"
  mkdir -p "train/out/prior-pilot-$name"
  # the clips are encoded once, by the first arm; the others reuse its codes
  [ -f train/out/prior-codes-v1.pt ] && cp train/out/prior-codes-v1.pt "train/out/prior-pilot-$name/codes.pt"
  echo "== prior pilot $name: $* ($(date -u +%H:%M))"
  nice -n 5 python3 train/train_gpt.py --out "train/out/prior-pilot-$name" "${base[@]}" "$@" > "train/out/prior-pilot-$name.log" 2>&1
  [ -f train/out/prior-codes-v1.pt ] || cp "train/out/prior-pilot-$name/codes.pt" train/out/prior-codes-v1.pt
  record "$name" "$*"
}

for arm in "$@"; do
  case $arm in
    g144x4)       run g144x4 --hidden-dim 144 --layers 4 ;;
    g144x4-seed1) run g144x4-seed1 --hidden-dim 144 --layers 4 --seed 1 ;;
    g240x6)       run g240x6 --hidden-dim 240 --layers 6 ;;
    g384x8)       run g384x8 --hidden-dim 384 --layers 8 ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
done
