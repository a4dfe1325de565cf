# Sourced by the other scripts: where the Python venv (kept outside the clone so CI and later
# runs reuse it) and the build directory live.
DSALIGN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DSALIGN_VENV=${DSALIGN_VENV:-$HOME/.cache/dsalign/venv}
DSALIGN_BUILD=${DSALIGN_BUILD:-$DSALIGN_ROOT/build}
export PATH="/usr/local/cuda/bin:$PATH"
export CCACHE_DIR=${CCACHE_DIR:-$HOME/.cache/dsalign/ccache}
# Precompiled headers and ccache get along only with these.
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
# Paths relative to the clone, and no hashing of the build directory (which -g would otherwise
# add), so a fresh clone (CI) hits the cache of an earlier one.
export CCACHE_BASEDIR="$DSALIGN_ROOT"
export CCACHE_NOHASHDIR=true
