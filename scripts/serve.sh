#!/usr/bin/env bash
# Builds the web demo and serves it on http://127.0.0.1:8000/ (pass --port N for another port).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/videogpt-web/target}"
bash scripts/build-web.sh
exec cargo run --release --locked -- serve "$@"
