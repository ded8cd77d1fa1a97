#!/usr/bin/env bash
# The quality ladder's pilots (issue 26, docs/training.md): tokenizers of VideoGPT's other strides
# (2×4×4: 8×16×16 tokens per 16×64×64 clip; 4×2×2: 4×32×32) fine-tuned from the shipped natural-64,
# whose state_dict has the same shapes. Every arm starts from natural-64, runs a fixed number of
# steps (not minutes: a build on the other core would favour whichever arm it spared) and ends with
# the same linear cooldown over its last 25 %; validation PSNR on the held-out sources decides.
#   bash train/ladder_pilots.sh ARM [ARM ...]     # rows appended to train/out/pilots.jsonl
# Arms: s244 s244-seed1 s244-freeze s244-2048 s244-v2 s244-lr1e-4 s244-crop32 s422 s422-... (see below)
set -euo pipefail
cd "$(dirname "$0")/.."
held=(diver.mov motion.mov coffee.png astronaut.png china.jpg)
v1=(--data train/out/natural-64-v1.npz --exclude "${held[@]}")
base=(--init models/natural-64.safetensors --n-hiddens 64 --n-res-layers 2 --embedding-dim 64
      --batch 8 --log-every 50 --save-every 100000)

record() {  # one row per arm in train/out/pilots.jsonl
  python3 - "$1" "$2" <<'PY'
import json, sys, subprocess, torch
name, cfg = sys.argv[1], sys.argv[2]
hist = [json.loads(l) for l in open(f"train/out/pilot-{name}/log.jsonl")]
end = json.load(open(f"train/out/pilot-{name}/train.json"))["last"]
cpu = next(l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines() if l.startswith("Model name"))
evals = [dict(step=h["step"], val=h["val_psnr"], test=h["test_psnr"]) for h in hist if "val_psnr" in h]
row = dict(arm=name, config=cfg, host=cpu, torch=torch.__version__, threads=torch.get_num_threads(),
           clips_per_s=[h["clips_per_s"] for h in hist if "clips_per_s" in h][-1], evals=evals)
open("train/out/pilots.jsonl", "a").write(json.dumps(row) + "\n")
print(json.dumps(row), flush=True)
PY
}

run() {  # run NAME STEPS ARGS...: one arm from natural-64, cooldown over its last quarter
  local name=$1 steps=$2; shift 2
  rm -rf "train/out/pilot-$name"
  echo "== pilot $name: $* ($(date -u +%H:%M))"
  nice -n 5 python3 train/train_vqvae.py --out "train/out/pilot-$name" "${base[@]}" --steps "$steps" \
    --cooldown 0.25 --eval-every $((steps / 2)) "$@" > "train/out/pilot-$name.log" 2>&1
  record "$name" "steps $steps $*"
}

for arm in "$@"; do
  case $arm in
    s244)        run s244 500 "${v1[@]}" --downsample 2,4,4 --n-codes 1024 --lr 3e-4 ;;
    s244-seed1)  run s244-seed1 500 "${v1[@]}" --downsample 2,4,4 --n-codes 1024 --lr 3e-4 --seed 1 ;;
    s244-freeze) run s244-freeze 500 "${v1[@]}" --downsample 2,4,4 --n-codes 1024 --lr 3e-4 --freeze-codebook 100 ;;
    s244-2048)   run s244-2048 500 "${v1[@]}" --downsample 2,4,4 --n-codes 2048 --lr 3e-4 ;;
    s244-v2)     run s244-v2 500 --sources train/out/sources --downsample 2,4,4 --n-codes 1024 --lr 3e-4 ;;
    s244-lr1e-4) run s244-lr1e-4 500 "${v1[@]}" --downsample 2,4,4 --n-codes 1024 --lr 1e-4 ;;
    s244-lr6e-4) run s244-lr6e-4 500 "${v1[@]}" --downsample 2,4,4 --n-codes 1024 --lr 6e-4 --warmup 50 ;;
    s244-crop32) # 16×32×32 crops at batch 32 (the same pixels per step), the last quarter at full size
      rm -rf train/out/pilot-s244-crop32
      echo "== pilot s244-crop32 ($(date -u +%H:%M))"
      nice -n 5 python3 train/train_vqvae.py --out train/out/pilot-s244-crop32 "${base[@]}" "${v1[@]}" --downsample 2,4,4 \
        --n-codes 1024 --lr 3e-4 --steps 375 --batch 32 --crop 32 --eval-every 250 > train/out/pilot-s244-crop32.log 2>&1
      nice -n 5 python3 train/train_vqvae.py --out train/out/pilot-s244-crop32 "${base[@]}" "${v1[@]}" --downsample 2,4,4 \
        --n-codes 1024 --lr 3e-4 --steps 500 --cooldown 1.0 --eval-every 125 >> train/out/pilot-s244-crop32.log 2>&1
      record s244-crop32 "steps 375 at batch 32 crop 32 then 125 at batch 8 full size with cooldown; v1 2,4,4 1024 3e-4" ;;
    s422)        run s422 400 "${v1[@]}" --downsample 4,2,2 --n-codes 1024 --lr 3e-4 ;;
    s422-seed1)  run s422-seed1 400 "${v1[@]}" --downsample 4,2,2 --n-codes 1024 --lr 3e-4 --seed 1 ;;
    s422-2048)   run s422-2048 400 "${v1[@]}" --downsample 4,2,2 --n-codes 2048 --lr 3e-4 ;;
    s422-freeze) run s422-freeze 400 "${v1[@]}" --downsample 4,2,2 --n-codes 1024 --lr 3e-4 --freeze-codebook 100 ;;
    s422-v2)     run s422-v2 400 --sources train/out/sources --downsample 4,2,2 --n-codes 1024 --lr 3e-4 ;;
    # bf16 autocast against f32 at equal steps, from 4,2,2 run 1's weights before its cooldown (speed is
    # measured apart, by bench_train.py: bf16 wins if it trains as well a step)
    s422r-f32)   run s422r-f32 300 "${v1[@]}" --init train/checkpoints/natural-stride4x2x2-run1-stable.safetensors --downsample 4,2,2 --n-codes 1024 --lr 3e-4 --precision f32 ;;
    s422r-bf16)  run s422r-bf16 300 "${v1[@]}" --init train/checkpoints/natural-stride4x2x2-run1-stable.safetensors --downsample 4,2,2 --n-codes 1024 --lr 3e-4 --precision bf16 ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
done
