#!/usr/bin/env bash
# The step loop's stall for a training checkpoint (fp32 weights + AdamW moments), dsalign beside
# its peers in the same run (issue 17): dsalign_bench_checkpoint (background writer, host buffers
# kept; --fresh: new buffers each time; --foreground: a synchronous write) and
# bench/peer_checkpoint.py (transformers' Trainer-style synchronous save, and
# torch.distributed.checkpoint.async_save; with a GPU also its cached, pinned stager). Each
# process takes CHECKPOINTS checkpoints in a row; the first fills fresh memory, the later ones are
# the steady state. Prints each JSON line, then per variant the first and the median later stall.
#   bench/checkpoint_speed.sh [preset=deepseek-coder-1.3b] [layers=8] [device=cpu] [checkpoints=3] [work=/tmp/dsalign_checkpoint_bench]
# DSALIGN_BUILD and DSALIGN_PYTHON name another build and python (scripts/gpu_check.sh does).
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
preset=${1:-deepseek-coder-1.3b} layers=${2:-8} device=${3:-cpu} checkpoints=${4:-3} work=${5:-/tmp/dsalign_checkpoint_bench}
py=${DSALIGN_PYTHON:-$DSALIGN_VENV/bin/python}
bench="$DSALIGN_BUILD/dsalign_bench_checkpoint"
export TQDM_DISABLE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error PYTHONWARNINGS=ignore
rm -rf "$work" && mkdir -p "$work"
results="$work/results.jsonl"
run() {  # label, command...
  local label=$1; shift
  "$@" | "$py" -c 'import json,sys
for l in sys.stdin:
    if l.startswith("{"):
        d=json.loads(l); d["label"]=sys.argv[1]; print(json.dumps(d))' "$label" | tee -a "$results"
  rm -rf "$work/run/checkpoints" "$work"/run/peer_*
}
common=(--model "$preset" --layers "$layers" --device "$device" --checkpoints "$checkpoints" --out "$work/run")
run "dsalign, kept buffers" "$bench" "${common[@]}"
run "dsalign, fresh buffers" "$bench" "${common[@]}" --fresh
run "dsalign, foreground write" "$bench" "${common[@]}" --foreground
run "transformers Trainer (save_pretrained + torch.save)" "$py" "$DSALIGN_ROOT/bench/peer_checkpoint.py" "$work/run" hf "$checkpoints" "$device"
run "torch DCP async_save" "$py" "$DSALIGN_ROOT/bench/peer_checkpoint.py" "$work/run" dcp "$checkpoints" "$device"
if [[ $device == cuda* ]]; then
  run "dsalign, kept pinned buffers (async copies)" "$bench" "${common[@]}" --pinned
  run "torch DCP async_save, cached pinned stager" "$py" "$DSALIGN_ROOT/bench/peer_checkpoint.py" "$work/run" dcp-cache "$checkpoints" "$device"
fi
echo "== $(date -u +%F), $(nproc) cores, $preset with $layers layers on $device"
"$py" - "$results" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
labels = list(dict.fromkeys(r["label"] for r in rows))
gib = rows[0]["state_bytes"] / 2**30
print(f"fp32 weights + AdamW moments: {gib:.2f} GiB")
print(f"{'variant':55s} {'stall, 1st':>11s} {'stall, later':>13s} {'write after':>12s} {'sys in stall':>13s}")
for label in labels:
    mine = [r for r in rows if r["label"] == label]
    later = [r for r in mine if r["checkpoint"] > 1] or mine
    print(f"{label:55s} {mine[0]['stall_s']:10.2f}s {statistics.median(r['stall_s'] for r in later):12.2f}s "
          f"{statistics.median(r['write_after_stall_s'] for r in later):11.2f}s {statistics.median(r['stall_sys_s'] for r in later):12.2f}s")
PY
