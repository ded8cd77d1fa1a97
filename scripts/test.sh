#!/usr/bin/env bash
# Runs every test: the CPU and wgpu (WGSL) backends against the PyTorch goldens, bad inputs, IO
# and the CLI end to end. Installs what is missing first (Debian): a software Vulkan driver
# (lavapipe) so the GPU path runs without a GPU, and ffmpeg for container IO.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
command -v node >/dev/null 2>&1 || need+=(nodejs npm)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need+=(mesa-vulkan-drivers)
ldconfig -p 2>/dev/null | grep -q 'libvulkan.so.1' || need+=(libvulkan1)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Mesa's Vulkan loader probes for a display and complains without this; compute needs none.
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
# Builds are cached outside the clone (CI clones afresh each run); set CARGO_TARGET_DIR to override.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/videogpt-web/target}"
cargo test --release --locked "$@"
# a filter or other cargo test arguments run just those Rust tests
[ $# -gt 0 ] && exit 0
# the CPU path's other microkernels (AVX2, plain Rust) against the same PyTorch goldens, where
# this processor runs them (the tests above used the fastest it has)
for kernel in avx2 portable; do
  VIDEOGPT_CPU_KERNEL=$kernel cargo test --release --locked --test cpu_parity --test gpt_parity --test gpt_sampling --test gemm -q
done

# the code stays formatted and clippy-clean, native and wasm
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo fmt --check
cargo clippy --release --locked --all-targets -- -D warnings

# The web page, the <video-gpt> element and the dist/ package in real browsers: the engine built
# to wasm, Debian's Chromium with WebGPU on SwiftShader and a fake webcam, driven by
# playwright-core, and Debian's Firefox ESR driven by puppeteer-core (tests/e2e/).
# Firefox ESR (puppeteer-core over WebDriver BiDi) runs the embed and the page on its CPU path.
browsers=()
command -v chromium >/dev/null 2>&1 || browsers+=(chromium)
command -v firefox-esr >/dev/null 2>&1 || browsers+=(firefox-esr)
if [ ${#browsers[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${browsers[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${browsers[@]}" >/dev/null
fi
bash scripts/build-dist.sh
cargo clippy --release --locked --lib --target wasm32-unknown-unknown -- -D warnings
VIDEOGPT_BIN="$CARGO_TARGET_DIR/release/videogpt" node --test --test-concurrency=1 tests/e2e/
