#!/usr/bin/env bash
# dsalign eval gen beside lm-evaluation-harness's generate_until (the pinned lm_eval, Hugging Face
# backend) on the same tiny model and the same GSM8K-style prompts, in the same run: wall-clock
# time of each whole command (model load included), median of N runs, the ratio, and how many of
# the completions are identical.
#   bench/eval_gen_speed.sh [prompts=200] [runs=3]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
prompts=${1:-200} runs=${2:-3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py="$DSALIGN_VENV/bin/python"
# The oracle's tiny model (deepseek-llm tokenizer, 2 layers, hidden 32, 48 tokens), short prompts
# so that 16 new tokens fit.
"$py" "$DSALIGN_ROOT/tests/oracles/make_eval_cases.py" "$work/oracle" > /dev/null 2>&1
"$py" - "$work" "$prompts" <<'PY'
import json, random, sys
work, n = sys.argv[1], int(sys.argv[2])
random.seed(0)
names = "Tom Ann Lee Sam Mia Raj Eva Bo".split()
things = "apples pens books cars coins eggs".split()
with open(f"{work}/gen.jsonl", "w") as f:
    for i in range(n):
        a, b = random.randint(2, 90), random.randint(2, 90)
        q = f"Question: {random.choice(names)} has {a} {random.choice(things)} and gets {b} more. How many now?\nAnswer:"
        f.write(json.dumps({"id": str(i), "prompt": q, "answer": str(a + b)}) + "\n")
with open(f"{work}/oracle/tasks/dsalign_gen.yaml", "w") as f:
    f.write(f"""task: dsalign_gen
dataset_path: json
dataset_kwargs:
  data_files:
    test: {work}/gen.jsonl
test_split: test
output_type: generate_until
doc_to_text: prompt
doc_to_target: answer
generation_kwargs:
  until: ["Question:", "\\n\\n"]
  max_gen_toks: 16
  do_sample: false
filter_list:
  - name: flexible-extract
    filter:
      - function: regex
        group_select: -1
        regex_pattern: "(-?[$0-9.,]{{2,}})|(-?[0-9]+)"
      - function: take_first
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
    ignore_case: true
    regexes_to_ignore: [",", "\\\\$", "(?s).*#### ", "\\\\.$"]
""")
PY
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR + 1) / 2)]}'; }
ours=() peer=()
for ((i = 0; i < runs; i++)); do
  start=$(date +%s%N)
  "$DSALIGN_BUILD/dsalign" eval gen --task gsm8k --model "$work/oracle/model" --data "$work/gen.jsonl" --batch-size 16 \
    --max-new-tokens 16 --stop "Question:" --stop $'\n\n' --out "$work/ours.jsonl" > "$work/ours.txt" 2>/dev/null
  ours+=($(( ($(date +%s%N) - start) / 1000000 )))
  start=$(date +%s%N)
  HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1 "$py" -m lm_eval run --model hf \
    --model_args "pretrained=$work/oracle/model,dtype=float32,max_length=48" --device cpu --batch_size 16 \
    --include_path "$work/oracle/tasks" --tasks dsalign_gen --log_samples --output_path "$work/peer_out" > "$work/peer.txt" 2>&1
  peer+=($(( ($(date +%s%N) - start) / 1000000 )))
done
same=$("$py" - "$work" <<'PY'
import glob, json, sys
work = sys.argv[1]
ours = [json.loads(l) for l in open(f"{work}/ours.jsonl")][1:]
samples = [json.loads(l) for f in glob.glob(f"{work}/peer_out/**/samples_dsalign_gen_*.jsonl", recursive=True) for l in open(f)]
peer = {s["doc_id"]: s["resps"][0][0] for s in samples}
print(sum(1 for i, o in enumerate(ours) if peer.get(i) == o["completion"]), "of", len(ours))
PY
)
o=$(printf '%s\n' "${ours[@]}" | median) p=$(printf '%s\n' "${peer[@]}" | median)
echo "dsalign: $(grep -E '^\| gsm8k \| exact_match_flexible' "$work/ours.txt" | head -1)"
echo "lm_eval: $(grep -E 'exact_match' "$work/peer.txt" | head -1)"
echo "identical completions: $same"
echo "dsalign eval gen: ${o} ms   lm_eval (hf): ${p} ms   ratio $(printf '%d.%02d' $((p / o)) $(( (p * 100 / o) % 100 )))x  ($prompts prompts, 16 new tokens, stop strings; median of $runs)"
