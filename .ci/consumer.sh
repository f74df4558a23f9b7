#!/usr/bin/env bash
# CI: install the packed package into a fresh, empty project the way a user would — no .npmrc of this project, no
# npm_config_* or ONNXRUNTIME_NODE_INSTALL from this shell, only the npm registry — then take heun steps there.
#   1. plain `npm install <tarball>` must succeed; onnxruntime-node is an optional dependency, so npm drops it
#      where its install script cannot download its CUDA libraries; `auto` must then run on wasm;
#   2. `ONNXRUNTIME_NODE_INSTALL=skip npm install` (the README's line) must bring the onnx backend;
#   3. a heun step (two runs, and fused) on onnx and on wasm must give the step worked out by hand;
#   4. backend onnx-wasm says it needs onnxruntime-web, and after `npm install onnxruntime-web` gives the same step.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
while IFS= read -r name; do unset "$name"; done < <(env | sed -n 's/^\(npm_\(config\|package\)_[^=]*\)=.*/\1/Ip')
unset ONNXRUNTIME_NODE_INSTALL ONNXRUNTIME_NODE_INSTALL_CUDA
work=$(mktemp -d "${TMPDIR:-/tmp}/symflow-consumer-XXXXXX")
trap 'rm -rf "$work"' EXIT
fail() { echo "consumer test: FAIL: $*"; exit 1; }

npm pack --silent --pack-destination "$work" >/dev/null || fail "npm pack"  # prepack: a clean build of dist/
tarball=$(echo "$work"/symflow-*.tgz)
mkdir "$work/app" && cd "$work/app"
npm init -y >/dev/null
[ "$(npm config get onnxruntime-node-install)" = undefined ] || fail "an npm config of this machine sets onnxruntime-node-install"
echo "consumer test: npm install $(basename "$tarball") into an empty project"
npm install --no-audit --no-fund --loglevel=error "$tarball" || fail "npm install of the packed package failed"
node "$repo/.ci/consumer/checkPackage.mjs" node_modules/symflow || fail "the installed package is incomplete"
cp "$repo/.ci/consumer/heun.mjs" .
if [ -d node_modules/onnxruntime-node ]; then
  echo "  onnxruntime-node installed (its install script could run here)"
  node heun.mjs onnx wasm || fail "heun step after a plain install"
else
  echo "  onnxruntime-node dropped (its install script failed), as npm does with an optional dependency"
  node heun.mjs --no-onnx || fail "fallback without onnxruntime-node"
fi
echo "consumer test: ONNXRUNTIME_NODE_INSTALL=skip npm install"
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --loglevel=error || fail "npm install with ONNXRUNTIME_NODE_INSTALL=skip failed"
[ -d node_modules/onnxruntime-node ] || fail "onnxruntime-node is still missing"
node heun.mjs onnx wasm auto || fail "heun step on onnx and wasm"
# The optional peer onnxruntime-web brings backend onnx-wasm (the same ONNX models in WebAssembly).
refused=$(node -e "import('symflow').then(({ Session }) => Session.create({ backend: 'onnx-wasm' })).then(() => console.log('created'), (e) => console.log(e.message))")
echo "$refused" | grep -q "needs onnxruntime-web" || fail "backend onnx-wasm without onnxruntime-web: $refused"
echo "consumer test: npm install onnxruntime-web (the optional peer of backend onnx-wasm)"
ONNXRUNTIME_NODE_INSTALL=skip npm install --no-audit --no-fund --loglevel=error onnxruntime-web@^1.30.0 || fail "npm install onnxruntime-web failed"
node heun.mjs onnx-wasm || fail "heun step on onnx-wasm"
echo "consumer test: PASS (packed, installed into an empty project without any .npmrc, heun steps right on onnx, onnx-wasm and wasm)"
