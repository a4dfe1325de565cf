#!/usr/bin/env bash
# The main job until the SFT quickstart recipe exists: make a tiny DeepSeek-architecture
# checkpoint, inspect it, load it with the strict check, and run it on a few token ids.
set -euo pipefail
source "$(dirname "$0")/env.sh"
out=${1:-$DSALIGN_ROOT/runs/quickstart}
dsalign="$DSALIGN_BUILD/dsalign"
rm -rf "$out"
mkdir -p "$out"
"$dsalign" init tiny-coder "$out/model" --dtype bf16 --seed 0
"$dsalign" inspect "$out/model" --seq-len 4096 --load --dtype fp32
"$dsalign" forward --model "$out/model" --ids 32013,2,3,4,5 --out "$out/logits.safetensors"
echo
echo "quickstart: checkpoint in $out/model, logits in $out/logits.safetensors"
