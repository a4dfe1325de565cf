#!/usr/bin/env bash
# Builds (through setup.sh) and runs the whole test suite with CTest.
# usage: scripts/test.sh [--sanitize | --sanitize-all] [ctest arguments]
#   --sanitize: the LibTorch-free part under AddressSanitizer and UndefinedBehaviorSanitizer, in
#   build-sanitize/. --sanitize-all: every test, our code instrumented and linked to the wheel's
#   uninstrumented LibTorch, in build-sanitize-all/ (a second full build: about 15 minutes on 2 cores).
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$DSALIGN_ROOT/scripts/setup.sh"
if [[ "${1:-}" == "--sanitize" ]]; then
  # The LibTorch-free library and its tests (tokenizer, chat formats, data, recipes, report)
  # built with AddressSanitizer and UndefinedBehaviorSanitizer in build-sanitize/; any report
  # fails the test that triggered it.
  shift
  build=$DSALIGN_ROOT/build-sanitize
  if [ ! -f "$build/build.ninja" ]; then
    cmake -S "$DSALIGN_ROOT" -B "$build" -G Ninja -DDSALIGN_SANITIZE=ON \
      -DPython3_EXECUTABLE="$DSALIGN_VENV/bin/python" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
  fi
  cmake --build "$build" -j "${DSALIGN_JOBS:-$(nproc)}"
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ctest --test-dir "$build" --output-on-failure -j "${DSALIGN_JOBS:-$(nproc)}" "$@"
  exit
fi
if [[ "${1:-}" == "--sanitize-all" ]]; then
  shift
  build=$DSALIGN_ROOT/build-sanitize-all
  if [ ! -f "$build/build.ninja" ]; then
    torch_prefix=$("$DSALIGN_VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
    cmake -S "$DSALIGN_ROOT" -B "$build" -G Ninja -DDSALIGN_SANITIZE=ON -DDSALIGN_SANITIZE_ALL=ON \
      -DCMAKE_PREFIX_PATH="$torch_prefix" -DPython3_EXECUTABLE="$DSALIGN_VENV/bin/python" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
  fi
  cmake --build "$build" -j "${DSALIGN_JOBS:-$(nproc)}"
  # LibTorch keeps allocations alive until exit by design (leak reports would be its own).
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
    ctest --test-dir "$build" --output-on-failure -j "${DSALIGN_JOBS:-$(nproc)}" "$@"
  exit
fi
ctest --test-dir "$DSALIGN_BUILD" --output-on-failure -j "${DSALIGN_JOBS:-$(nproc)}" "$@"
