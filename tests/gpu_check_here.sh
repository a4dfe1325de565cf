#!/usr/bin/env bash
# scripts/gpu_check.sh as far as it goes without a GPU: it stops with a clear message (exit 2),
# and its report is built from what the CPU runs of the same benchmarks print.
#   tests/gpu_check_here.sh BUILD_DIR
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if nvidia-smi -L >/dev/null 2>&1; then echo "a GPU is present: run scripts/gpu_check.sh itself"; exit 0; fi
set +e
bash "$root/scripts/gpu_check.sh" "$work/out" > "$work/stdout" 2> "$work/stderr"
rc=$?
set -e
[ "$rc" = 2 ] || { echo "expected exit 2 without a GPU, got $rc"; cat "$work/stderr"; exit 1; }
grep -q "gpu_check: no NVIDIA GPU on this machine" "$work/stderr" || { echo "no clear message:"; cat "$work/stderr"; exit 1; }

# The report from the benchmarks' own JSON lines (CPU, tiny shapes).
mkdir -p "$work/r"
{
  "$build/dsalign_bench_kernels" --device cpu --rows 64 --hidden 32 --vocab 500 --steps 1
  "$build/dsalign_bench_loss" --device cpu --rows 64 --vocab 500 --hidden 32 --steps 1 --impl fused
  "$build/dsalign_bench_step" --model tiny --seq-len 16 --batch 2 --steps 1 --warmup 1 --adamw --kernels fused
  "$build/dsalign_bench_dpo" --model tiny --seq-len 16 --pairs 2 --steps 1 --warmup 1 --kernels fused
} | grep -E '^\{' > "$work/r/records.jsonl"
echo "skipped for time: peer: transformers + torch.compile (needs ~150s, 10s left)" > "$work/r/skipped.txt"
echo "cpu (test)" > "$work/r/device.txt"
"$DSALIGN_PYTHON" "$root/bench/gpu_report.py" "$work/r/records.jsonl" "$work/r/skipped.txt" "$work/r/device.txt" \
  "$work/r/report.md" "$work/r/report.json"
for expected in "dsalign kernels=fused (sft_step)" "dsalign dpo reference=live kernels=fused (dpo_step)" \
                "rms_norm reference fp32 (kernel)" "loss head fused fp32 (loss)" "Skipped for time:"; do
  grep -qF "$expected" "$work/r/report.md" || { echo "report lacks '$expected':"; cat "$work/r/report.md"; exit 1; }
done
"$DSALIGN_PYTHON" -c "import json,sys; r=json.load(open(sys.argv[1])); assert len(r['records']) >= 8, r" "$work/r/report.json"
echo "ok"
