#!/usr/bin/env bash
# The GPU path on a real GPU, in one command and one report (docs/performance.md, "On a lent GPU").
#
#   scripts/gpu-check.sh                     # here, with cargo: pack a bundle, then run it
#   scripts/gpu-check.sh --pack DIR          # only pack: DIR.tar.gz (copy it to the GPU machine)
#   DIR/gpu-check.sh [--out FILE] [--minutes N]   # there: no cargo, no network needed
#   scripts/gpu-check.sh --smoke             # CI on lavapipe: the bundle works (one test of each
#                                            # kind, the quick benchmark), in about a minute
#
# A bundle holds the release `videogpt` binary, the GPU test executables (tests/gpu_parity.rs,
# gpu_prior.rs, gpu_stats.rs), the test fixtures and shipped models they read, a Vulkan loader
# (used only where the machine has none) and this script. Running it writes one Markdown report:
# the machine, `videogpt gpu` (adapter, limits, FP32 peak), every GPU parity test, `videogpt bench`'s
# GPU rows, and `bench --gpu-stats --quick` (counters per chunk and token; with timestamp queries,
# per-layer GFLOP/s against the peak). Every step has a time limit drawn from --minutes (default
# 9) and the report says PASS, FAIL or TIMEOUT for each; the exit status is 0 only if all passed.
set -uo pipefail

here="$(cd "$(dirname "$0")" && pwd)"

pack() {  # pack DIR: build, then copy what a run needs into DIR and DIR.tar.gz
  local dir=$1 repo
  repo="$(cd "$here/.." && pwd)"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/videogpt-web/target}"
  rm -rf "$dir" && mkdir -p "$dir/bin" "$dir/lib" "$dir/tests" "$dir/models"
  (cd "$repo" && cargo build --release --locked --quiet --bin videogpt) || return 1
  cp "$CARGO_TARGET_DIR/release/videogpt" "$dir/bin/"
  local tests
  tests=$(cd "$repo" && cargo test --release --locked --no-run --message-format=json --test gpu_parity --test gpu_prior --test gpu_stats 2>/dev/null |
    python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["target"]["name"], m["executable"])') || return 1
  [ "$(echo "$tests" | wc -l)" -eq 3 ] || { echo "gpu-check: expected 3 test executables, got: $tests" >&2; return 1; }
  while read -r name exe; do cp "$exe" "$dir/bin/$name"; done <<< "$tests"
  cp -r "$repo/tests/fixtures" "$dir/tests/"
  cp "$repo"/models/*.safetensors "$dir/models/"
  cp "$repo/scripts/gpu-check.sh" "$dir/"
  # a GPU machine may have the NVIDIA driver's Vulkan ICD but no loader library; ours is used only then
  local loader
  loader=$(ldconfig -p 2>/dev/null | awk '/libvulkan.so.1 .*x86-64/ {print $NF; exit}')
  [ -n "$loader" ] && cp -L "$loader" "$dir/lib/libvulkan.so.1"
  strip "$dir"/bin/* 2>/dev/null || true
  tar -czf "$dir.tar.gz" -C "$(dirname "$dir")" "$(basename "$dir")"
  echo "gpu-check: packed $dir ($(du -sh "$dir" | cut -f1)) and $dir.tar.gz ($(du -sh "$dir.tar.gz" | cut -f1))"
}

run() {  # run from inside a bundle
  local out=$1 minutes=$2 smoke=$3
  local deadline=$(( $(date +%s) + minutes * 60 ))
  export VIDEOGPT_ROOT="$here"
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
  # the bundled Vulkan loader only where the system has none
  ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || export LD_LIBRARY_PATH="$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  local failed=0 summary=()
  step() {  # step NAME SHARE COMMAND...: run with a limit of SHARE % of the time left (at least 20 s)
    local name=$1 share=$2; shift 2
    local left=$(( deadline - $(date +%s) ))
    local limit=$(( left * share / 100 )); [ $limit -lt 20 ] && limit=20
    if [ $left -le 5 ]; then summary+=("| $name | SKIPPED (time cap reached) | |"); failed=1; return; fi
    echo "gpu-check: $name (limit ${limit}s)" >&2
    { echo; echo "## $name"; echo; echo '```'; } >> "$out"
    local t0=$SECONDS rc
    timeout --kill-after=10 "$limit" "$@" >> "$out" 2>&1; rc=$?
    echo '```' >> "$out"
    local verdict=PASS
    [ $rc -ne 0 ] && { verdict="FAIL (exit $rc)"; failed=1; }
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && verdict="TIMEOUT after ${limit}s"
    summary+=("| $name | $verdict | $(( SECONDS - t0 )) s |")
  }
  {
    echo "# videogpt-web GPU check, $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- host: $(uname -srm); CPU: $(lscpu 2>/dev/null | sed -n 's/^Model name: *//p')"
    command -v nvidia-smi >/dev/null && echo "- nvidia-smi: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)"
    echo "- Vulkan ICDs: $(ls /usr/share/vulkan/icd.d/ /etc/vulkan/icd.d/ 2>/dev/null | grep json | tr '\n' ' ')"
    echo "- bundle: $here; time cap ${minutes} min"
  } > "$out"
  step "adapter (videogpt gpu)" 10 "$here/bin/videogpt" gpu
  if [ "$smoke" = 1 ]; then
    # a software adapter runs the full check in tens of minutes: one test of each binary and the
    # small model's benchmark show the bundle works
    step "parity: one VQ-VAE golden (gpu_parity stride_444)" 40 "$here/bin/gpu_parity" --test-threads=1 stride_444
    step "parity: f16 prior weights (gpu_prior f16)" 40 "$here/bin/gpu_prior" --test-threads=1 f16
    step "counters: one chunk (gpu_stats)" 40 "$here/bin/gpu_stats" --test-threads=1 a_reconstructed_chunk
    step "bench: encode+decode, small model" 60 "$here/bin/videogpt" bench --no-torch --quick --repeat 1
  else
    step "parity: VQ-VAE against the PyTorch goldens and the CPU (gpu_parity)" 30 "$here/bin/gpu_parity" --test-threads=1
    step "parity: the prior's sampler (gpu_prior)" 30 "$here/bin/gpu_prior" --test-threads=1
    step "counters and budgets (gpu_stats)" 30 "$here/bin/gpu_stats" --test-threads=1
    step "bench: encode+decode, GPU rows" 40 "$here/bin/videogpt" bench --no-torch --repeat 5
    step "bench --gpu-stats (per-layer GFLOP/s with timestamps)" 90 "$here/bin/videogpt" bench --gpu-stats
  fi
  { echo; echo "## Summary"; echo; echo "| step | result | time |"; echo "|---|---|---:|"; printf '%s\n' "${summary[@]}"; } >> "$out"
  printf '%s\n' "${summary[@]}" >&2
  echo "gpu-check: report in $out" >&2
  return $failed
}

out="" minutes=9 pack_dir="" smoke=0
while [ $# -gt 0 ]; do
  case $1 in
    --pack) pack_dir=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --minutes) minutes=$2; shift 2 ;;
    --smoke) smoke=1; shift ;;
    *) echo "usage: $0 [--pack DIR] [--out FILE] [--minutes N] [--smoke]" >&2; exit 2 ;;
  esac
done
if [ -n "$pack_dir" ]; then
  pack "$pack_dir"; exit $?
fi
if [ -x "$here/bin/videogpt" ]; then  # inside a bundle
  run "${out:-$here/gpu-check-report.md}" "$minutes" "$smoke"; exit $?
fi
# in the checkout: pack into the build folder, then run the bundle
bundle="${CARGO_TARGET_DIR:-$HOME/.cache/videogpt-web/target}/gpu-check"
pack "$bundle" || exit 1
args=(--out "${out:-$bundle/gpu-check-report.md}" --minutes "$minutes")
[ "$smoke" = 1 ] && args+=(--smoke)
"$bundle/gpu-check.sh" "${args[@]}"
