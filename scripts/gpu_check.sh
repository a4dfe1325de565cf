#!/usr/bin/env bash
# Everything that needs a GPU, verified and measured in one command, within 9 minutes on one
# H100/H200:  scripts/gpu_check.sh [OUT_DIR]   (default: $OUT, else gpu_check_out/)
#
# On the lent GPU machine (see the device tool), stage first, here:
#   EXTRA_DEBS="libgloo-dev libpcre2-dev" bash ../shared/device/stage.sh && scripts/stage_gpu_peers.sh
# then run there with carry [".device"]:
#   source .device/on-device.sh && scripts/gpu_check.sh
# On any machine with a GPU, scripts/setup.sh done and liger-kernel importable, plain
# `scripts/gpu_check.sh` works too.
#
# It builds into build-gpu/ (the machine's compiler and torch), then:
#   1. every CUDA test (fused kernels against their references, varlen attention against each
#      document alone, the decoder with fused kernels, one NCCL rank, zero3 on cuda);
#   2. the kernel harnesses (time and GB/s of each op beside its reference) and the loss head's
#      peak memory, reference against fused;
#   3. dsalign_bench_step on DESIGN.md's shape (deepseek-coder-1.3b, seq 4096, micro-batch 2,
#      fp32 master weights + bf16, AdamW) with kernels reference and fused, then zero3 against none;
#   4. dsalign_bench_dpo, live and precomputed reference;
#   5. the peers on the same shapes in the same call: transformers eager, + torch.compile,
#      + Liger-Kernel (bench/peer_sft_step.py), plain transformers DPO (bench/peer_dpo_step.py);
#   6. checkpoint I/O (issue 17): a deepseek-coder-1.3b bf16 checkpoint loaded onto the GPU through
#      the pinned staging ring and by the copy from the map, bf16 and fp32, beside transformers'
#      from_pretrained(device_map="cuda"); the step loop's stall for a training checkpoint of GPU
#      weights + AdamW state beside torch DCP's async_save (bench/checkpoint_speed.sh).
# GPU_CHECK_PARTS picks what runs after the build: "kernels" (1-5), "io" (6), or both (the
# default, "kernels,io"); with a short device lease, one call per part.
# Every figure goes to OUT_DIR/report.md (one table, with ratios) and OUT_DIR/report.json; the
# logs beside them. A step that would not fit the time left is skipped and listed as skipped.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-${OUT:-$root/gpu_check_out}}
mkdir -p "$out"
build=${DSALIGN_GPU_BUILD:-$root/build-gpu}
budget=${GPU_CHECK_SECONDS:-540}  # the device tool allows 600 s per command
parts=",${GPU_CHECK_PARTS:-kernels,io},"
deadline=$((SECONDS + budget))
status=0
: > "$out/skipped.txt"
step() { echo; echo "== $*"; }
# run NAME SECONDS_NEEDED LOG COMMAND...: runs the command (stopped at the deadline) unless fewer
# seconds are left; the JSON lines of the logs are collected into records.jsonl at the end.
run() {
  local name=$1 needed=$2 log=$3; shift 3
  if ((deadline - SECONDS < needed)); then
    echo "skipped for time: $name (needs ~${needed}s, $((deadline - SECONDS))s left)" | tee -a "$out/skipped.txt"
    return 0
  fi
  step "$name"
  timeout --kill-after=5 $((deadline - SECONDS)) "$@" 2>&1 | tee -a "$out/$log"
  local rc=${PIPESTATUS[0]}
  ((rc == 0)) || { echo "FAILED ($rc): $name" | tee -a "$out/failed.txt"; status=1; }
  return 0
}

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU on this machine (nvidia-smi finds none); this script verifies and measures the CUDA path and needs one" >&2
  exit 2
fi
step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' | tee -a "$out/device.txt"

step "configure and build ($build)"
if [ ! -f "$build/CMakeCache.txt" ]; then
  torch_prefix=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_PREFIX_PATH="${CMAKE_PREFIX_PATH:+$CMAKE_PREFIX_PATH;}$torch_prefix" > "$out/configure.log" 2>&1 ||
    { tail -30 "$out/configure.log"; exit 1; }
fi
cmake --build "$build" -j "$(nproc)" > "$out/build.log" 2>&1 || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }
echo "built in $SECONDS s"

# Liger-Kernel for the peer: importable already, or the wheel stage_gpu_peers.sh carried.
wheel=$(ls "$root"/.device/wheels/liger_kernel-*.whl 2>/dev/null | head -1)
if ! python3 -c 'import liger_kernel' 2>/dev/null && [ -n "$wheel" ]; then
  mkdir -p "$out/.peers" && python3 -m zipfile -e "$wheel" "$out/.peers" && export PYTHONPATH="$out/.peers${PYTHONPATH:+:$PYTHONPATH}"
fi

if [[ $parts == *,kernels,* ]]; then
shape=(--model deepseek-coder-1.3b --seq-len 4096 --batch 2 --device cuda --param-dtype fp32 --compute-dtype bf16)
run "CUDA tests" 90 cuda_tests.txt ctest --test-dir "$build" -R "Kernels|Cuda|Nccl|FusedLinearCrossEntropy" --output-on-failure
run "kernel harnesses" 30 kernels.txt "$build/dsalign_bench_kernels" --device cuda
for impl in reference fused; do
  run "loss head peak memory ($impl)" 20 loss.txt "$build/dsalign_bench_loss" --impl "$impl" --device cuda --dtype bf16 \
    --rows 8192 --vocab 102400 --hidden 2048
done
for kernels in reference fused; do
  run "SFT step, kernels $kernels" 40 bench_step.txt "$build/dsalign_bench_step" "${shape[@]}" --adamw --steps 10 --kernels "$kernels"
done
run "peer: transformers eager" 45 peers.txt python3 "$root/bench/peer_sft_step.py" --seq 4096 --batch 2 --mode eager
run "peer: transformers + Liger-Kernel" 75 peers.txt python3 "$root/bench/peer_sft_step.py" --seq 4096 --batch 2 --mode liger
for reference in live precomputed; do
  run "DPO step, $reference reference" 40 bench_dpo.txt "$build/dsalign_bench_dpo" --model deepseek-coder-1.3b --seq-len 2048 \
    --pairs 2 --device cuda --compute-dtype bf16 --reference "$reference" --steps 10 --kernels fused
done
run "peer: transformers DPO" 45 peers.txt python3 "$root/bench/peer_dpo_step.py" --seq 2048 --pairs 2
for strategy in none zero3; do
  run "SFT step through DataParallel, $strategy" 40 bench_strategy.txt "$build/dsalign_bench_step" "${shape[@]}" \
    --strategy "$strategy" --steps 10 --kernels fused
done
run "peer: transformers + torch.compile" 150 peers.txt python3 "$root/bench/peer_sft_step.py" --seq 4096 --batch 2 --mode compile
fi

if [[ $parts == *,io,* ]]; then
run "checkpoint I/O tests" 30 io_tests.txt ctest --test-dir "$build" -R "Checkpoint" --output-on-failure
load_model="$out/.load_model"
run "checkpoint for the load benchmark (dsalign init)" 60 load.txt "$build/dsalign" init deepseek-coder-1.3b "$load_model" --dtype bf16
if [ -f "$load_model/config.json" ]; then
  cat "$load_model"/*.safetensors > /dev/null  # warm: the page cache holds the files
  for dtype in bf16 fp32; do
    for method in pread mmap; do
      run "load onto the GPU, $dtype, $method" 20 load.txt "$build/dsalign_bench_load" --model "$load_model" --dtype "$dtype" \
        --device cuda --method "$method"
    done
    run "peer: from_pretrained onto the GPU, $dtype" 40 load.txt python3 "$root/bench/peer_load.py" "$load_model" "$dtype" --device cuda
  done
  rm -rf "$load_model"
fi
run "checkpoint stall, GPU weights + AdamW state" 150 checkpoint.txt env DSALIGN_BUILD="$build" DSALIGN_PYTHON=python3 \
  bash "$root/bench/checkpoint_speed.sh" deepseek-coder-1.3b 8 cuda 3 "$out/.checkpoint_bench"
rm -rf "$out/.checkpoint_bench"
fi

cat "$out"/{kernels,loss,bench_step,bench_dpo,bench_strategy,peers}.txt 2>/dev/null | grep -E '^\{' > "$out/records.jsonl"
python3 "$root/bench/gpu_report.py" "$out/records.jsonl" "$out/skipped.txt" "$out/device.txt" "$out/report.md" "$out/report.json" ||
  status=1
for log in load checkpoint; do  # their own figures, appended as they printed them
  [ -f "$out/$log.txt" ] && { echo; echo "## $log (JSON lines and summary)"; echo '```'; grep -vE '^(==|$)' "$out/$log.txt"; echo '```'; } >> "$out/report.md"
done
step "done in $SECONDS s (status $status); report: $out/report.md"
cat "$out/report.md" 2>/dev/null
exit $status
