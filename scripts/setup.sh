#!/usr/bin/env bash
# Set-up, idempotent: Debian packages, the Python venv with torch (LibTorch) and the test oracles,
# then configure and build. A second run with nothing changed takes seconds.
set -euo pipefail
source "$(dirname "$0")/env.sh"

# 1. Debian packages (only when one is missing).
packages=(build-essential cmake ninja-build ccache pkg-config libyaml-cpp-dev nlohmann-json3-dev
          libboost-program-options-dev libgtest-dev libgmock-dev libpcre2-dev libgloo-dev python3-venv
          libprotobuf-dev protobuf-compiler libjs-chart.js chromium clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# 2. Python venv outside the clone; reinstalled only when the pinned requirements change.
requirements="$DSALIGN_ROOT/scripts/requirements-oracles.txt"
stamp="$DSALIGN_VENV/.dsalign-requirements"
if [ ! -x "$DSALIGN_VENV/bin/python" ]; then
  echo "setup: creating venv $DSALIGN_VENV"
  mkdir -p "$(dirname "$DSALIGN_VENV")"
  python3 -m venv "$DSALIGN_VENV"
fi
if ! cmp -s "$requirements" "$stamp"; then
  echo "setup: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')"
  "$DSALIGN_VENV/bin/python" -m pip install -q --upgrade pip
  "$DSALIGN_VENV/bin/python" -m pip install -q -r "$requirements"
  cp "$requirements" "$stamp"
fi

# 3. Configure (once) and build.
# (build.ninja too: a configure that failed leaves a cache but no build files.)
if [ ! -f "$DSALIGN_BUILD/CMakeCache.txt" ] || [ ! -f "$DSALIGN_BUILD/build.ninja" ]; then
  torch_prefix=$("$DSALIGN_VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  cmake -S "$DSALIGN_ROOT" -B "$DSALIGN_BUILD" -G Ninja \
    -DCMAKE_PREFIX_PATH="$torch_prefix" \
    -DPython3_EXECUTABLE="$DSALIGN_VENV/bin/python" \
    -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache
fi
cmake --build "$DSALIGN_BUILD" -j "${DSALIGN_JOBS:-$(nproc)}"
echo "setup: built $DSALIGN_BUILD/dsalign"
