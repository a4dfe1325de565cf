#!/usr/bin/env bash
# dsalign_bench_step beside transformers on CPU in the same run: the same shape (the config.json
# dsalign init writes for a preset), fp32, AdamW (transformers: torch.optim.AdamW), random tokens.
# dsalign runs with model.kernels reference and auto (on CPU: fused AdamW and the fused loss).
# Prints each tokens/s and the ratios.
#   bench/cpu_step.sh [preset=tiny-coder] [seq=512] [batch=2] [steps=5]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
preset=${1:-tiny-coder} seq=${2:-512} batch=${3:-2} steps=${4:-5}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$DSALIGN_BUILD/dsalign" init "$preset" "$work/model" --dtype fp32 > /dev/null
for kernels in reference auto; do
  "$DSALIGN_BUILD/dsalign_bench_step" --model "$work/model/config.json" --seq-len "$seq" --batch "$batch" --steps "$steps" \
    --warmup 2 --adamw --kernels "$kernels" | grep -E '^\{' >> "$work/records.jsonl"
done
"$DSALIGN_VENV/bin/python" "$DSALIGN_ROOT/bench/peer_sft_step.py" --config "$work/model" --device cpu --compute-dtype fp32 \
  --seq "$seq" --batch "$batch" --steps "$steps" --warmup 2 >> "$work/records.jsonl"
"$DSALIGN_VENV/bin/python" - "$work/records.jsonl" <<'PY'
import json, sys
records = [json.loads(line) for line in open(sys.argv[1])]
peer = next(r for r in records if r["name"].startswith("transformers"))
for r in records:
    print(f"{r['name']:<28} {r['tokens_per_s']:9.0f} tokens/s  peak {r['peak_bytes'] / 2**20:7.0f} MiB"
          + ("" if r is peer else f"  {r['tokens_per_s'] / peer['tokens_per_s']:.2f}x transformers"))
PY
