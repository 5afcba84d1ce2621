#!/usr/bin/env bash
# The GPU check on a machine without Node.js or a network, from what bench/gpu-bundle.sh packed (it copies this file
# to .device/run.sh). From the repository root, with .device beside it:
#
#   bash .device/run.sh [gpu-check arguments]
#
# Unpacks Node and the bundle into /tmp/tessera-gpu, adds the Vulkan loader where the machine has none (and NVIDIA's
# Vulkan driver file where the driver's folder has one), and runs bench/gpu-check.sh on the bundled benches.
set -u
bundle=$(cd "$(dirname "$0")" && pwd)
repo=$(pwd)
work=/tmp/tessera-gpu
[ -f "$bundle/payload.tar.xz" ] || { echo "gpu-device-run: no payload.tar.xz beside $0: run bench/gpu-bundle.sh first" >&2; exit 1; }
[ -f "$repo/bench/gpu-check.sh" ] || { echo "gpu-device-run: run this from the repository root" >&2; exit 1; }
rm -rf "$work"
mkdir -p "$work/bin"
xz -dc "$bundle/node.xz" > "$work/bin/node" && chmod +x "$work/bin/node"
tar -C "$work" -xJf "$bundle/payload.tar.xz"
export PATH="$work/bin:$PATH"
echo "gpu-device-run: node $(node --version) from the bundle, unpacked in $work"
if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1'; then
  for deb in "$bundle"/libvulkan1_*.deb; do
    [ -f "$deb" ] && dpkg -x "$deb" / && echo "gpu-device-run: installed the Vulkan loader from $(basename "$deb")"
  done
  ldconfig
fi
# Where the NVIDIA driver is mounted outside the usual places, its Vulkan driver file is named to the loader.
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}" ] && [ -f "$nvidia_icd" ] && ! ls /usr/share/vulkan/icd.d/nvidia_icd*.json /etc/vulkan/icd.d/nvidia_icd*.json >/dev/null 2>&1; then
  export VK_DRIVER_FILES="$nvidia_icd"
  echo "gpu-device-run: VK_DRIVER_FILES=$nvidia_icd"
fi
TESSERA_GPU_CHECK_APP="$work/app" exec bash "$repo/bench/gpu-check.sh" --gpu-runtime "$work/gpu-runtime" "$@"
