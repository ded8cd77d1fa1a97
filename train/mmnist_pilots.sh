#!/usr/bin/env bash
# Moving MNIST tokenizer pilots (issue 28, docs/training.md): does a finer stride or a larger
# codebook make the digits readable? Every arm starts from the shipped mmnist (4,4,4, 256 codes;
# the other strides have the same state_dict shapes, as the natural ladder's do), runs the same
# number of steps on train/out/mmnist.npz with 256 training clips held out to validate, and ends
# with the same linear cooldown over its last quarter. Judged by validation PSNR and by
# train/recognise.py's share of two-digit frames in the reconstructions of the test clips.
#   bash train/mmnist_pilots.sh ARM [ARM ...]   # rows appended to train/out/mmnist-pilots.jsonl
#   TRAIN_ONLY=1 bash train/mmnist_pilots.sh ARM ...   # train only; run again without it to measure
# Arms: m444 (the control: more steps of the shipped recipe), m444-seed1 (noise), m244, m144,
# m444-512 (the codebook split in two, 256 → 512 codes).
set -euo pipefail
cd "$(dirname "$0")/.."
base=(--data train/out/mmnist.npz --init models/mmnist.safetensors --n-hiddens 64 --n-res-layers 1
      --embedding-dim 32 --batch 16 --lr 3e-4 --log-every 50 --save-every 100000)

run() {  # run NAME STEPS ARGS...: one arm from mmnist, cooldown over its last quarter, then the metric
  local name=$1 steps=$2; shift 2
  # an arm that already ran (its weights are written at its last step) is only measured again,
  # so a stopped script resumes at the first arm it did not finish
  if [ ! -f "train/out/mpilot-$name/model.safetensors" ]; then
    rm -rf "train/out/mpilot-$name"
    echo "== pilot $name: $* ($(date -u +%H:%M))"
    nice -n 5 python3 train/train_vqvae.py --out "train/out/mpilot-$name" "${base[@]}" --steps "$steps" \
      --cooldown 0.25 --eval-every $((steps / 2)) "$@" > "train/out/mpilot-$name.log" 2>&1
  fi
  [ -n "${TRAIN_ONLY:-}" ] && return
  local line
  line=$(python3 train/recognise.py --data train/out/mmnist.npz --vqvae "train/out/mpilot-$name/model.safetensors" \
    --n-samples 0 | head -1)
  python3 - "$name" "steps $steps $*" "$line" <<'PY'
import json, sys
name, cfg, line = sys.argv[1:]
hist = [json.loads(l) for l in open(f"train/out/mpilot-{name}/log.jsonl")]
evals = [dict(step=h["step"], val=h["val_psnr"], test=h["test_psnr"]) for h in hist if "val_psnr" in h]
row = dict(arm=name, config=cfg, evals=evals, recognise=line,
           clips_per_s=[h["clips_per_s"] for h in hist if "clips_per_s" in h][-1])
open("train/out/mmnist-pilots.jsonl", "a").write(json.dumps(row) + "\n")
print(json.dumps(row), flush=True)
PY
}

for arm in "$@"; do
  case $arm in
    m444)       run m444 600 --downsample 4,4,4 --n-codes 256 ;;
    m444-seed1) run m444-seed1 600 --downsample 4,4,4 --n-codes 256 --seed 1 ;;
    m244)       run m244 600 --downsample 2,4,4 --n-codes 256 ;;
    m144)       run m144 600 --downsample 1,4,4 --n-codes 256 ;;
    m444-512)   run m444-512 600 --downsample 4,4,4 --n-codes 512 ;;
    *) echo "unknown arm $arm" >&2; exit 2 ;;
  esac
done
