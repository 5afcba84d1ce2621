#!/usr/bin/env bash
# Packs what bench/gpu-check.sh needs into .device/ (git-ignored), for a GPU machine that has no Node.js and no
# network, where at most 64 MiB travel (the device machines this workplace lends: docs/sharding.md). One run there:
#
#   bash .device/run.sh            (run from the repository root; carry .device)
#
# unpacks Node's binary, the two GPU benches bundled with their imports (stage-runtime, span-agreement), node-llama-cpp
# with its CPU build and the Vulkan build (`tessera gpu setup --build vulkan`), koffi's linux-x64 build and, where the
# machine lacks it, the Vulkan loader (Debian's libvulkan1), into /tmp/tessera-gpu, and runs bench/gpu-check.sh on
# them. CUDA is not packed: node-llama-cpp's CUDA build (143 MB packed) needs the CUDA 12 runtime beside it, and does
# not fit.
#
#   bench/gpu-bundle.sh [--out DIR]     (default .device; needs `npm install` and `npm run build` done, and apt-get)
set -euo pipefail
cd "$(dirname "$0")/.."
out=.device
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "gpu-bundle: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ -d node_modules/node-llama-cpp ] || { echo "gpu-bundle: run npm install first" >&2; exit 1; }
nlc_version=$(node -p 'require("./node_modules/node-llama-cpp/package.json").version')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
rm -rf "$out"
mkdir -p "$out" "$stage/app" "$stage/node_modules"

echo "gpu-bundle: benches, bundled (esbuild)"
node_modules/.bin/esbuild bench/stage-runtime.ts bench/span-agreement.ts bench/lib-gpu-probe.ts \
  packages/node/src/stage/ggml/ggml-worker.ts packages/node/src/stage/span-cost-worker.ts \
  --bundle --platform=node --format=esm --target=node20 --conditions=tessera-source --outdir="$stage/app" \
  --entry-names='[name]' --external:node-llama-cpp --external:koffi --external:'@node-llama-cpp/*' \
  --banner:js="import { createRequire as __bundleRequire } from 'node:module'; const require = __bundleRequire(import.meta.url);" \
  --log-level=warning
echo '{ "type": "module" }' > "$stage/app/package.json"
cat > "$stage/app/bench.js" <<'EOF'
// `node app/bench.js <name> [args]`: what `npm run bench -- <name>` runs, on the bundled benches.
const [name, ...args] = process.argv.slice(2);
const bench = await import(`./${name}.js`);
await bench.main(args);
process.exit(0);
EOF

echo "gpu-bundle: node-llama-cpp $nlc_version and what it imports, its CPU build, koffi's linux-x64 build"
# Every package node-llama-cpp needs at run time, where npm put it (nested copies included).
node -e '
const fs = require("fs"), path = require("path");
const seen = new Set();
function walk(name, from) {
  let dir = from, file;
  for (;;) {
    file = path.join(dir, "node_modules", name, "package.json");
    if (fs.existsSync(file)) break;
    const up = path.dirname(dir);
    if (up === dir) throw new Error("not installed: " + name);
    dir = up;
  }
  const pkgDir = path.dirname(file);
  if (seen.has(pkgDir)) return;
  seen.add(pkgDir);
  const pkg = JSON.parse(fs.readFileSync(file, "utf8"));
  for (const dep of Object.keys(pkg.dependencies ?? {})) walk(dep, pkgDir);
}
walk("node-llama-cpp", process.cwd());
for (const dir of seen) console.log(path.relative(process.cwd(), dir));
' | while read -r dir; do
  mkdir -p "$stage/$(dirname "$dir")"
  cp -a "$dir" "$stage/$dir"
done
# Sources for building llama.cpp, which the prebuilt builds never need.
rm -rf "$stage/node_modules/node-llama-cpp/llama/gitRelease.bundle" "$stage/node_modules/node-llama-cpp/llama/xpack"
mkdir -p "$stage/node_modules/@node-llama-cpp"
cp -a node_modules/@node-llama-cpp/linux-x64 "$stage/node_modules/@node-llama-cpp/"
mkdir -p "$stage/node_modules/koffi/build/koffi"
cp -a node_modules/koffi/package.json node_modules/koffi/index.js node_modules/koffi/indirect.js node_modules/koffi/lib "$stage/node_modules/koffi/"
cp -a node_modules/koffi/build/koffi/linux_x64 "$stage/node_modules/koffi/build/koffi/"

echo "gpu-bundle: node-llama-cpp's Vulkan build (tessera gpu setup --build vulkan)"
node packages/cli/bin/tessera.js gpu setup --build vulkan --yes --home "$stage/home" > "$stage/gpu-setup.log" 2>&1 || { cat "$stage/gpu-setup.log"; exit 1; }
mv "$stage/home/data/gpu-runtime" "$stage/gpu-runtime"

echo "gpu-bundle: the Vulkan loader (Debian's libvulkan1), for a machine without one"
(cd "$out" && apt-get download libvulkan1 > /dev/null 2>&1) || { echo "gpu-bundle: apt-get download libvulkan1 failed" >&2; exit 1; }

echo "gpu-bundle: compressing (xz)"
xz -6 -T0 -c "$(command -v node)" > "$out/node.xz"
tar -C "$stage" -cf - app node_modules gpu-runtime | xz -6 -T0 > "$out/payload.tar.xz"
cp bench/gpu-device-run.sh "$out/run.sh"
du -b "$out"/* | awk '{ printf "  %6.1f MiB  %s\n", $1 / 1048576, $2 }'
total=$(( $(du -sb "$out" | cut -f1) + $(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) ))
echo "gpu-bundle: $(awk -v b="$total" 'BEGIN { printf "%.1f", b / 1048576 }') MiB with the repository's tracked files (the limit is 64)"
