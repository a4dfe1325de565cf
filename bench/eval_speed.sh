#!/usr/bin/env bash
# dsalign eval mc beside lm-evaluation-harness (the pinned lm_eval, Hugging Face backend) on the
# same tiny model and the same multiple-choice data, in the same run: wall-clock time of each
# whole command (model load included), median of N runs, and the ratio.
#   bench/eval_speed.sh [questions=400] [runs=3]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
questions=${1:-400} runs=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py="$DSALIGN_VENV/bin/python"
# The oracle's tiny model (deepseek-llm tokenizer, 2 layers, hidden 32), and a larger question set.
"$py" "$DSALIGN_ROOT/tests/oracles/make_eval_cases.py" "$work/oracle" > /dev/null 2>&1
"$py" - "$work" "$questions" <<'PY'
import json, random, sys
work, n = sys.argv[1], int(sys.argv[2])
random.seed(0)
words = "the of and to in is was that for on with as by at from it an be this are or which".split()
with open(f"{work}/mc.jsonl", "w") as f:
    for i in range(n):
        query = "Question: " + " ".join(random.choice(words) for _ in range(random.randint(20, 60))) + "?\nAnswer:"
        choices = [" ".join(random.choice(words) for _ in range(random.randint(1, 8))) for _ in range(4)]
        f.write(json.dumps({"query": query, "choices": choices, "gold": random.randrange(4)}) + "\n")
with open(f"{work}/oracle/tasks/dsalign_mc.yaml") as f:
    task = f.read().replace(f"{work}/oracle/mc.jsonl", f"{work}/mc.jsonl")
with open(f"{work}/oracle/tasks/dsalign_mc.yaml", "w") as f:
    f.write(task)
PY
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
ours=() peer=()
for ((i = 0; i < runs; i++)); do
  start=$(date +%s%N)
  "$DSALIGN_BUILD/dsalign" eval mc --model "$work/oracle/model" --data "$work/mc.jsonl" --unconditional --batch-size 16 \
    --out "$work/ours.jsonl" > "$work/ours.txt" 2>/dev/null
  ours+=($(( ($(date +%s%N) - start) / 1000000 )))
  start=$(date +%s%N)
  HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1 "$py" -m lm_eval run --model hf \
    --model_args "pretrained=$work/oracle/model,dtype=float32,max_length=48" --device cpu --batch_size 16 \
    --include_path "$work/oracle/tasks" --tasks dsalign_mc > "$work/peer.txt" 2>&1
  peer+=($(( ($(date +%s%N) - start) / 1000000 )))
done
o=$(printf '%s\n' "${ours[@]}" | median) p=$(printf '%s\n' "${peer[@]}" | median)
echo "dsalign: $(grep -E '^\| acc ' "$work/ours.txt" | head -1)"
echo "lm_eval: $(grep -E '\|acc +\|' "$work/peer.txt" | head -1)"
echo "dsalign eval mc: ${o} ms   lm_eval (hf): ${p} ms   ratio $(printf '%d.%02d' $((p / o)) $(( (p * 100 / o) % 100 )))x  ($questions questions x 4 choices, unconditional too; median of $runs)"
