#!/usr/bin/env bash
# Builds the web demo: the engine compiled to wasm32 with wasm-bindgen's JS glue in www/pkg/, and
# the page's npm dependencies (mp4box, the MP4 demuxer) in node_modules/. Installs what is
# missing first: the wasm32 target and wasm-bindgen-cli at exactly the version in Cargo.lock.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/videogpt-web/target}"

rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# the CLI must match the wasm-bindgen crate exactly, or the glue and the module disagree
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }' || true)
if [ "$have" != "$want" ]; then
  echo "installing wasm-bindgen-cli $want (once; a few minutes)"
  # not --locked: the CLI's own lock file pins a yanked crate
  cargo install -q wasm-bindgen-cli --version "$want"
fi

cargo build --release --locked --lib --target wasm32-unknown-unknown
wasm-bindgen --target web --no-typescript --out-dir www/pkg "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/videogpt.wasm"

if [ ! -f node_modules/mp4box/package.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "web build ready: www/pkg/ ($(du -h www/pkg/videogpt_bg.wasm | cut -f1) of wasm)"
