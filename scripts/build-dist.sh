#!/usr/bin/env bash
# Packages the embeddable player as a static folder, dist/: the JS modules, the wasm engine, the
# MP4 demuxer, the default model and an example page. Copy dist/ to any static host (it needs
# only the .wasm MIME type) and embed clips with:
#   <script type="module" src="https://HOST/PATH/www/video-gpt.js"></script>
#   <video-gpt model="https://HOST/PATH/models/natural-64.safetensors" tokens="clip.vgt"></video-gpt>
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-web.sh
model=$(node -e 'console.log(require("./models/index.json").default)')
rm -rf dist
mkdir -p dist/www/pkg dist/www/media dist/models dist/node_modules/mp4box/dist
cp www/videogpt.js www/video-gpt.js www/worker.js www/media.js www/webm.js dist/www/
cp www/pkg/videogpt.js www/pkg/videogpt_bg.wasm dist/www/pkg/
cp www/media/calais-1906.vgt www/media/calais-1906.mp4 dist/www/media/
cp "models/$model.safetensors" dist/models/
[ -f "models/$model.md" ] && cp "models/$model.md" dist/models/
# media.js imports mp4box by this relative path; keep it
cp node_modules/mp4box/LICENSE node_modules/mp4box/dist/*.mjs dist/node_modules/mp4box/dist/
sed "s|models/natural-64.safetensors|models/$model.safetensors|g" embed.html > dist/index.html
cat > dist/package.json <<JSON
{
  "name": "videogpt-web",
  "version": "$(awk -F'"' '/^version/ { print $2; exit }' Cargo.toml)",
  "description": "VideoGPT in the browser: a <video-gpt> element and a JS API that decode and reconstruct video locally on WebGPU",
  "license": "MIT",
  "type": "module",
  "main": "www/videogpt.js",
  "exports": { ".": "./www/videogpt.js", "./video-gpt": "./www/video-gpt.js", "./media": "./www/media.js" },
  "files": ["www", "models", "node_modules/mp4box/dist", "index.html"]
}
JSON
echo "dist/ ready: $(du -sh dist | cut -f1) ($model model); serve it with: cargo run --release -- serve --root dist"
