#!/usr/bin/env bash
# Run here (with network) before a GPU run: downloads what scripts/gpu_check.sh's peers need and
# the GPU machine lacks into .device/wheels/ (git-ignored, carried with .device): Liger-Kernel's
# wheel (pure Python; Triton comes with the machine's torch).
set -euo pipefail
source "$(dirname "$0")/env.sh"
LIGER_VERSION=0.8.5
mkdir -p "$DSALIGN_ROOT/.device/wheels"
"$DSALIGN_VENV/bin/python" -m pip download -q --no-deps "liger-kernel==$LIGER_VERSION" -d "$DSALIGN_ROOT/.device/wheels"
ls -1 "$DSALIGN_ROOT/.device/wheels"
