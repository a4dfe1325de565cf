#!/usr/bin/env bash
# dsalign's tokenizer beside the `tokenizers` library, same corpus, same machine, one run.
#   bench/tokenizer.sh [deepseek-llm|deepseek-coder]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
name=${1:-deepseek-llm}
corpus_dir="$DSALIGN_BUILD/oracle_tokenizers"
[ -f "$corpus_dir/bench_corpus.txt" ] ||
  "$DSALIGN_VENV/bin/python" "$DSALIGN_ROOT/tests/oracles/make_tokenizer_cases.py" "$corpus_dir" >/dev/null
corpus="$corpus_dir/bench_corpus.txt"
"$DSALIGN_BUILD/dsalign_bench_tokenizer" --tokenizer "$DSALIGN_ROOT/assets/tokenizers/$name" --corpus "$corpus"
"$DSALIGN_VENV/bin/python" "$DSALIGN_ROOT/bench/tokenizer_peer.py" "$DSALIGN_ROOT/assets/tokenizers/$name/tokenizer.json" "$corpus"
