#!/usr/bin/env bash
# The natural-64 recipe pilots (docs/training.md): every arm starts from the shipped weights, runs the
# same number of steps (not minutes: a build on the other core would favour whichever arm it spared)
# and ends with the same linear cooldown; validation PSNR on the held-out sources decides.
#   bash train/pilots.sh [STEPS]      # rows appended to train/out/pilots.jsonl
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-500}
common=(--init models/natural-64.safetensors --n-hiddens 64 --n-res-layers 2 --embedding-dim 64 --n-codes 1024
        --batch 8 --steps "$steps" --cooldown 0.25 --log-every 50 --eval-every 250 --save-every 100000)
held=(diver.mov motion.mov coffee.png astronaut.png china.jpg)
arm() {
  local name=$1; shift
  rm -rf "train/out/pilot-$name"
  nice -n 5 python3 train/train_vqvae.py --out "train/out/pilot-$name" "${common[@]}" "$@" | tee "train/out/pilot-$name.log"
  python3 - "$name" "$*" <<'PY'
import json, sys, platform, subprocess, torch
name, cfg = sys.argv[1], sys.argv[2]
hist = [json.loads(l) for l in open(f"train/out/pilot-{name}/log.jsonl")]
cpu = next(l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name"))
row = dict(arm=name, config=cfg, host=cpu, torch=torch.__version__, threads=torch.get_num_threads(),
           clips_per_s=[h["clips_per_s"] for h in hist if "clips_per_s" in h][-1],
           evals=[dict(step=h["step"], val=h["val_psnr"], test=h["test_psnr"]) for h in hist if "val_psnr" in h])
open("train/out/pilots.jsonl", "a").write(json.dumps(row) + "\n")
print(json.dumps(row))
PY
}
arm A --data train/out/natural-64-v1.npz --exclude "${held[@]}" --lr 3e-4
arm B --sources train/out/sources --lr 3e-4
arm C --sources train/out/sources --optim adamw --lr 1e-3 --warmup 100 --clip-grad 1.0
arm A2 --data train/out/natural-64-v1.npz --exclude "${held[@]}" --lr 3e-4 --seed 1
