#!/usr/bin/env bash
# Builds (through setup.sh) and runs the whole test suite with CTest.
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$DSALIGN_ROOT/scripts/setup.sh"
ctest --test-dir "$DSALIGN_BUILD" --output-on-failure -j "${DSALIGN_JOBS:-$(nproc)}" "$@"
