#!/usr/bin/env bash
# Packages the embeddable player as a static folder, dist/: the JS modules, the wasm engine, the
# MP4 demuxer, the default model and an example page; and the same as an npm package,
# dist/videogpt-web-VERSION.tgz (`npm pack`), which works from node_modules/ or a CDN's
# /npm/videogpt-web@VERSION/ layout. Copy dist/ to any static host (it needs the .wasm MIME type,
# and Access-Control-Allow-Origin: * when the pages using it live on another origin) and embed with:
#   <script type="module" src="https://HOST/PATH/www/video-gpt.js"></script>
#   <video-gpt model="https://HOST/PATH/models/natural-64.safetensors" tokens="clip.vgt"></video-gpt>
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-web.sh
model=$(node -e 'console.log(require("./models/index.json").default)')
rm -rf dist
mkdir -p dist/www/pkg dist/www/media dist/models dist/www/vendor/mp4box
cp www/videogpt.js www/video-gpt.js www/util.js www/worker.js www/webm.js www/live.js dist/www/
# npm never packs node_modules/: the package carries mp4box under www/vendor/ and imports it there
sed 's|../node_modules/mp4box/dist/mp4box.all.mjs|./vendor/mp4box/mp4box.all.mjs|' www/media.js > dist/www/media.js
grep -q "./vendor/mp4box/mp4box.all.mjs" dist/www/media.js || { echo "media.js's mp4box import moved: update build-dist.sh" >&2; exit 1; }
cp www/pkg/videogpt.js www/pkg/videogpt_bg.wasm dist/www/pkg/
cp www/media/calais-1906.vgt www/media/calais-1906.mp4 dist/www/media/
cp "models/$model.safetensors" dist/models/
[ -f "models/$model.md" ] && cp "models/$model.md" dist/models/
# mp4box.all.mjs imports its chunk files beside it
cp node_modules/mp4box/LICENSE node_modules/mp4box/dist/*.mjs dist/www/vendor/mp4box/
sed "s|models/natural-64.safetensors|models/$model.safetensors|g" embed.html > dist/index.html
cat > dist/package.json <<JSON
{
  "name": "videogpt-web",
  "version": "$(awk -F'"' '/^version/ { print $2; exit }' Cargo.toml)",
  "description": "VideoGPT in the browser: a <video-gpt> element and a JS API that decode and reconstruct video locally on WebGPU",
  "license": "MIT",
  "type": "module",
  "main": "www/videogpt.js",
  "exports": { ".": "./www/videogpt.js", "./video-gpt": "./www/video-gpt.js", "./media": "./www/media.js", "./live": "./www/live.js" },
  "files": ["www", "models", "index.html"],
  "keywords": ["videogpt", "vq-vae", "webgpu", "wasm", "video", "web-component"]
}
JSON
(cd dist && npm pack --silent >/dev/null)
echo "dist/ ready: $(du -sh dist | cut -f1) ($model model), npm package $(ls dist/*.tgz); serve it with: cargo run --release -- serve --root dist"
