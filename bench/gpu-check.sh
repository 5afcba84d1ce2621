#!/usr/bin/env bash
# Issue 16, must-show 3: what this machine has for layer spans on the GPU, then a span on every ggml GPU backend that
# initialises, against llama.cpp on the same GPU. One run, under 10 minutes; exits 0 when no GPU backend initialises
# (it says so and why), 1 when its own backend probe fails (nothing is then known, nothing benched) or a backend
# initialised and its bench failed.
#
#   bench/gpu-check.sh [--gpu-runtime DIR] [--rounds N] [--tokens N] [--weights f16|bf16|q8_0|q4_k_m]
#
# --gpu-runtime: the prefix `tessera gpu setup` installed the GPU build into (default
# ${XDG_DATA_HOME:-~/.local/share}/tessera/gpu-runtime, the node's data dir); node-llama-cpp's GPU package installed
# beside it in node_modules is found too. Prints, per backend b that initialises:
#   RESULT gpu_span_vs_llamacpp_<b>      median per-round tok/s of the span over llama.cpp's (target >= 0.8)
#   RESULT gpu_span_max_rel_err_<b>      the span's logits against the same span on ggml's CPU backend
#   RESULT span_agreement_*_<b>          npm run bench -- span-agreement (three seeds): tokens and logits against
#                                        llama.cpp's build for the same GPU, and ggml's CPU backend
# and always RESULT gpu_backends_initialised <n>. On a machine without npm, bench/gpu-bundle.sh packs it all.
set -u
cd "$(dirname "$0")/.."
started=$(date +%s)
budget=570
gpu_runtime="${XDG_DATA_HOME:-$HOME/.local/share}/tessera/gpu-runtime"
rounds=5
tokens=48
weights=f16
while [ $# -gt 0 ]; do
  case "$1" in
    --gpu-runtime) gpu_runtime="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --tokens) tokens="$2"; shift 2 ;;
    --weights) weights="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "gpu-check: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

# From the repository (TypeScript through tsx), or from bench/gpu-bundle.sh's bundle, whose unpacked `app` folder
# TESSERA_GPU_CHECK_APP names (a machine without npm).
if [ -n "${TESSERA_GPU_CHECK_APP:-}" ]; then
  run_probe="node $TESSERA_GPU_CHECK_APP/lib-gpu-probe.js"
  run_bench="node $TESSERA_GPU_CHECK_APP/bench.js"
else
  run_probe="node --conditions=tessera-source --import tsx bench/lib-gpu-probe.ts"
  run_bench="npm run --silent bench --"
fi

have() { command -v "$1" >/dev/null 2>&1; }
lib() { ldconfig -p 2>/dev/null | awk -v l="$1" '$1 ~ "^"l { print $NF; exit }'; }

echo "== machine"
echo "$(uname -srm); $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ //'); $(nproc) CPUs; node $(node --version)"

echo "== GPU driver"
if have nvidia-smi; then
  nvidia-smi --query-gpu=index,name,driver_version,memory.total,memory.used --format=csv,noheader 2>&1 | sed 's/^/nvidia-smi: /'
  nvidia-smi 2>/dev/null | grep -o 'CUDA Version: [0-9.]*' | head -1 | sed 's/^/nvidia-smi: driver supports /'
else
  echo "nvidia-smi: not found"
fi
[ -r /proc/driver/nvidia/version ] && head -1 /proc/driver/nvidia/version | sed 's/^/kernel module: /'
if have rocm-smi; then
  rocm-smi --showdriverversion 2>&1 | grep -i 'version' | head -2 | sed 's/^/rocm-smi: /'
  rocm-smi --showproductname 2>&1 | grep -i 'card series' | head -4 | sed 's/^/rocm-smi: /'
else
  echo "rocm-smi: not found"
fi
if have lspci; then
  lspci 2>/dev/null | grep -iE 'vga|3d controller|display' | sed 's/^/lspci: /'
fi

echo "== Vulkan"
loader=$(lib libvulkan.so.1)
echo "Vulkan loader (libvulkan.so.1): ${loader:-not found}"
icds=$(ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json 2>/dev/null | tr '\n' ' ')
echo "Vulkan drivers (ICD files): ${icds:-none}"
if have vulkaninfo; then
  timeout 30 vulkaninfo --summary 2>&1 | grep -E 'Vulkan Instance Version|deviceName|deviceType|driverName|driverInfo|apiVersion' | sed 's/^ */vulkaninfo: /'
else
  echo "vulkaninfo: not found"
fi

echo "== CUDA runtime"
for l in libcuda.so.1 libcudart.so libcublas.so; do
  found=$(lib "$l")
  if [ -z "$found" ]; then
    found=$(ls /usr/local/cuda*/lib64/"$l"* /usr/local/cuda*/targets/*/lib/"$l"* 2>/dev/null | head -1)
  fi
  echo "$l: ${found:-not found}"
done

echo "== ggml GPU backends (node-llama-cpp's builds; GPU runtime prefix: $gpu_runtime)"
# Same decision as the node's stage_backend = <backend>: the build found, loaded beside the same release's
# libggml-base, and a GPU device found. One line per backend: name, ok|no, detail.
probe=$($run_probe "$gpu_runtime")
probe_rc=$?
echo "$probe" | sed 's/\t/: /; s/\t/ - /'
if [ $probe_rc -ne 0 ]; then
  # Its output may name no backend, or only some: "none initialised" would be a claim this run cannot make.
  echo "gpu-check: FAILED: the backend probe ($run_probe) exited $probe_rc, so which GPU backends initialise is unknown and no span was benched; its output is above" >&2
  exit 1
fi
ok_backends=$(echo "$probe" | awk -F'\t' '$2 == "ok" { print $1 }')

n=0
failed=0
for b in $ok_backends; do
  n=$((n + 1))
  left=$((budget - ($(date +%s) - started)))
  if [ "$left" -lt 60 ]; then
    echo "gpu-check: $b initialised but under a minute of the 10 is left: not benched"
    continue
  fi
  echo "== span on $b against llama.cpp on the same GPU ($rounds rounds x $tokens tokens, $weights, ${left}s left)"
  out=$(timeout "$left" $run_bench stage-runtime "$rounds" "$tokens" --weights "$weights" --backend "$b" --gpu-runtime "$gpu_runtime" 2>&1)
  rc=$?
  echo "$out" | grep -vE '^\s*$' | tail -40
  if [ $rc -ne 0 ]; then
    echo "gpu-check: the $b bench failed (exit $rc)"
    failed=1
  fi
  left=$((budget - ($(date +%s) - started)))
  if [ "$left" -lt 60 ]; then
    echo "gpu-check: under a minute of the 10 is left: $b's agreement not measured"
    continue
  fi
  echo "== how $b rounds: the span against llama.cpp's $b build and ggml's CPU backend (${left}s left)"
  out=$(timeout "$left" $run_bench span-agreement --backend "$b" --gpu-runtime "$gpu_runtime" --seeds 7,11,13 2>&1)
  rc=$?
  echo "$out" | grep -vE '^\s*$' | tail -24
  if [ $rc -ne 0 ]; then
    echo "gpu-check: the $b agreement bench failed (exit $rc)"
    failed=1
  fi
done

echo "== summary"
echo "RESULT gpu_backends_initialised $n"
if [ "$n" -eq 0 ]; then
  echo "no GPU backend initialised on this machine, so no span ran on a GPU:"
  echo "$probe" | awk -F'\t' '{ print "  " $1 ": " $3 }'
fi
echo "gpu-check: $(( $(date +%s) - started ))s"
exit $failed
