#!/usr/bin/env bash
# Everything that needs a GPU, verified and measured in one command, for the session that gets one.
# On the lent GPU machine (see the device tool): stage the Debian packages it lacks with
#   EXTRA_DEBS="libgloo-dev libpcre2-dev" bash ../shared/device/stage.sh
# then run, with carry [".device"]:
#   source .device/on-device.sh && scripts/gpu_check.sh
# On any machine with a GPU and scripts/setup.sh done, plain `scripts/gpu_check.sh` works too.
# It builds into build-gpu/ (its own compiler and torch), then:
#   1. the CUDA tests: fused kernels against their references, the decoder with kernels, one
#      NCCL rank (dsalign launch --nproc-per-node 1) training like one process on cuda, and zero3's
#      units (storage allocated and released on the GPU) training like none on cuda;
#   2. dsalign_bench_step on the deepseek-coder-1.3b shape (DESIGN.md's reference point), and
#      through DataParallel with zero3 against none;
#   3. dsalign_bench_dpo, live and precomputed reference.
# Every figure goes to stdout and to gpu_check_out/ (the device tool's $OUT when set).
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${OUT:-$root/gpu_check_out}
mkdir -p "$out"
build=${DSALIGN_GPU_BUILD:-$root/build-gpu}
status=0
step() { echo; echo "== $*"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"

step "configure and build ($build)"
if [ ! -f "$build/CMakeCache.txt" ]; then
  torch_prefix=$(python3 -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_PREFIX_PATH="${CMAKE_PREFIX_PATH:+$CMAKE_PREFIX_PATH;}$torch_prefix" > "$out/configure.log" 2>&1 ||
    { tail -30 "$out/configure.log"; exit 1; }
fi
cmake --build "$build" -j "$(nproc)" > "$out/build.log" 2>&1 || { grep -E "error|FAILED" -A5 "$out/build.log" | head -60; exit 1; }

step "CUDA tests"
ctest --test-dir "$build" -R "Kernels|Cuda|Nccl" --output-on-failure 2>&1 | tee "$out/cuda_tests.txt" || status=1

step "training step, deepseek-coder-1.3b shape, seq 4096, micro-batch 2, fp32 master + bf16, AdamW"
for kernels in "" "--kernels"; do
  "$build/dsalign_bench_step" --model deepseek-coder-1.3b --seq-len 4096 --batch 2 --device cuda --param-dtype fp32 \
    --compute-dtype bf16 --adamw --steps 10 $kernels 2>&1 | tee -a "$out/bench_step.txt" || status=1
done

step "zero3 against none, same shape, one GPU (gathering and releasing each unit around its use)"
for strategy in none zero3; do
  "$build/dsalign_bench_step" --model deepseek-coder-1.3b --seq-len 4096 --batch 2 --device cuda --param-dtype fp32 \
    --compute-dtype bf16 --strategy "$strategy" --steps 10 2>&1 | tee -a "$out/bench_strategy.txt" || status=1
done

step "DPO step, same shape, seq 2048, 2 pairs, live and precomputed reference"
for reference in live precomputed; do
  "$build/dsalign_bench_dpo" --model deepseek-coder-1.3b --seq-len 2048 --pairs 2 --device cuda --compute-dtype bf16 \
    --reference "$reference" --steps 10 2>&1 | tee -a "$out/bench_dpo.txt" || status=1
done

step "done (status $status); figures in $out"
exit $status
