#!/usr/bin/env bash
# Fuzzing: builds the libFuzzer targets (fuzz/: one per parser; clang with AddressSanitizer and
# UndefinedBehaviorSanitizer, the LibTorch-free library only) in build-fuzz/ and runs each for
# SECONDS (default 60) on its corpus: fuzz/corpus/<target>/ (committed seeds and every past
# finding, kept as a regression input), the repository's real files (tokenizers, recipes, data,
# configs) and checkpoints written by safetensors and torch.save (fuzz/make_seeds.py). The
# corpus grows in build-fuzz/corpus/ between runs. A finding stops the script with exit 1; its
# input is in build-fuzz/findings/ (add it to fuzz/corpus/<target>/ with a test once fixed).
# usage: scripts/fuzz.sh [seconds | --ci] [target ...]
# --ci: a fixed number of inputs per target (about 25 s each here) from a fixed seed and a fresh
# corpus, so that the outcome depends only on the code: CI cannot turn red by chance.
set -euo pipefail
source "$(dirname "$0")/env.sh"
seconds=${1:-60}
shift || true
declare -A ci_runs=([safetensors_header]=700000 [torch_bin]=800000 [torch_pickle]=850000 [tokenizer_json]=70000 [tokenizer_encode]=35000
                    [tokenizer_config]=100000 [model_config]=50000 [records]=5500 [recipe]=55000 [id_list]=1300000)
all=(safetensors_header torch_bin torch_pickle tokenizer_json tokenizer_encode tokenizer_config model_config records recipe id_list)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
root=$DSALIGN_ROOT
build=${DSALIGN_FUZZ_BUILD:-$root/build-fuzz}
command -v clang++ >/dev/null || { echo "fuzz: clang++ not found (scripts/setup.sh installs clang)" >&2; exit 2; }

if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DDSALIGN_FUZZ=ON \
    -DPython3_EXECUTABLE="$DSALIGN_VENV/bin/python" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
fi
cmake --build "$build" -j "${DSALIGN_JOBS:-$(nproc)}" >/dev/null

# Seeds from real files, refreshed every run.
seeds=$build/seeds
rm -rf "$seeds"
mkdir -p "$seeds"/{tokenizer_json,tokenizer_encode,tokenizer_config,model_config,records,recipe,id_list}
"$DSALIGN_VENV/bin/python" "$root/fuzz/make_seeds.py" "$seeds" "$root"/assets/tokenizers/deepseek-{llm,coder}/tokenizer.json >/dev/null
for t in deepseek-llm deepseek-coder; do cp "$root/assets/tokenizers/$t/tokenizer_config.json" "$seeds/tokenizer_config/$t.json"; done
n=0
for f in "$root"/recipes/quickstart/data/*.jsonl "$root"/tests/data/*/*.jsonl "$root"/assets/prompts/*.jsonl; do
  [ -f "$f" ] || continue
  n=$((n + 1))
  head -n 40 "$f" > "$seeds/records/$n.jsonl"
  head -c 2000 "$f" > "$seeds/tokenizer_encode/$n.txt"
done
n=0
for f in $(find "$root/recipes" -name '*.yaml'); do n=$((n + 1)); cp "$f" "$seeds/recipe/$n.yaml"; done

status=0
for t in "${targets[@]}"; do
  mkdir -p "$build/corpus/$t" "$build/findings"
  dict=()
  case $t in
    torch_pickle) dict=(-dict="$root/fuzz/dict/pickle.dict") ;;
    torch_bin) dict=(-dict="$root/fuzz/dict/zip.dict") ;;
    recipe) dict=(-dict="$root/fuzz/dict/yaml.dict") ;;
    safetensors_header|tokenizer_json|tokenizer_config|model_config|records) dict=(-dict="$root/fuzz/dict/json.dict") ;;
  esac
  budget=(-max_total_time="$seconds")
  if [[ "$seconds" == "--ci" ]]; then
    budget=(-runs="${ci_runs[$t]}" -seed=1)
    rm -rf "$build/corpus/$t"
    mkdir -p "$build/corpus/$t"
  fi
  corpora=("$build/corpus/$t")
  for d in "$root/fuzz/corpus/$t" "$seeds/$t"; do [ -d "$d" ] && corpora+=("$d"); done
  log=$build/findings/$t.log
  start=$(date +%s)
  if "$build/fuzz/fuzz_$t" "${budget[@]}" -timeout=20 -rss_limit_mb=2560 -max_len=65536 \
      -artifact_prefix="$build/findings/$t-" "${dict[@]}" "${corpora[@]}" >"$log" 2>&1; then
    runs=$(grep -o 'Done [0-9]* runs' "$log" | tail -1 | cut -d' ' -f2)
    echo "fuzz: $t: ${runs:-?} runs in $(( $(date +%s) - start )) s, no finding"
  else
    echo "fuzz: $t: FINDING (see $log and $build/findings/$t-*)" >&2
    grep -E 'ERROR|SUMMARY|what\(\)' "$log" | head -5 >&2 || true
    status=1
  fi
done
exit $status
