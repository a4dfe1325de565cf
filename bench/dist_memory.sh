#!/usr/bin/env bash
# Per-rank peak host memory of SFT on CPU for each strategy and 1, 2 and 4 ranks, on a ~134M
# parameter deepseek-coder-shaped model (hidden 768, 12 layers, ffn 2048, the 32k vocabulary),
# fp32, AdamW, sequences of 256, 3 steps. Prints measured peak RSS (the largest over the ranks)
# beside the bytes of weights, gradients and AdamW state rank 0 holds.
#   bench/dist_memory.sh [work_dir]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
dsalign="$DSALIGN_BUILD/dsalign"
work=${1:-$(mktemp -d)}
mkdir -p "$work"
cd "$work"
if [ ! -f model/config.json ]; then
  python3 - <<'PY'
import json
json.dump({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 768, "intermediate_size": 2048,
           "num_hidden_layers": 12, "num_attention_heads": 12, "num_key_value_heads": 12, "vocab_size": 32256,
           "max_position_embeddings": 4096, "rms_norm_eps": 1e-6, "rope_theta": 100000.0, "tie_word_embeddings": False,
           "bos_token_id": 32013, "eos_token_id": 32021, "torch_dtype": "float32"}, open("config.json", "w"))
with open("data.jsonl", "w") as f:
    for i in range(64):
        f.write(json.dumps({"prompt": f"Write a function number {i}.", "response": "def f():\n    return " + str(i) * 40}) + "\n")
PY
  "$dsalign" init config.json model --dtype fp32 > /dev/null
  cp "$DSALIGN_ROOT"/assets/tokenizers/deepseek-coder/tokenizer*.json model/
fi
cat > recipe.yaml <<'YAML'
run: {name: mem, output_dir: run, overwrite: true}
model: {path: model, dtype: fp32, compute_dtype: fp32}
data: {sources: [{path: data.jsonl}], max_seq_len: 256, cache_dir: cache}
train: {micro_batch_size: 1, global_batch_size: 4, lr: 1.0e-4, max_steps: 3, log_every: 1, async_checkpoint: false}
YAML
printf '%-8s %5s  %22s  %14s  %14s  %14s\n' strategy ranks "peak RSS (min-max/rank)" weights gradients "AdamW state"
for strategy in none ddp zero1 zero2 zero3; do
  for n in 1 2 4; do
    if [ "$strategy" = none ] && [ "$n" -gt 1 ]; then continue; fi
    if [ "$strategy" != none ] && [ "$n" -eq 1 ]; then continue; fi
    if [ "$n" -eq 1 ]; then cmd=("$dsalign" sft recipe.yaml); else cmd=("$dsalign" launch --nproc-per-node "$n" sft recipe.yaml "dist.strategy=$strategy"); fi
    "${cmd[@]}" > "log_${strategy}_$n.txt" 2>&1 || { echo "failed: ${cmd[*]}"; tail -3 "log_${strategy}_$n.txt"; exit 1; }
    python3 - "$strategy" "$n" <<'PY'
import json, sys
rows = [json.loads(l) for l in open("run/metrics.jsonl") if '"loss"' in l]
last = rows[-1]
gib = lambda b: f"{b / 2**30:.2f} GiB" if b is not None else "-"
per_rank = last.get("peak_memory_bytes_per_rank", [last["peak_memory_bytes"]])
rss = f"{min(per_rank) / 2**30:.2f}-{max(per_rank) / 2**30:.2f} GiB"
print(f"{sys.argv[1]:<8} {sys.argv[2]:>5}  {rss:>22}  {gib(last.get('held_weight_bytes')):>14}  "
      f"{gib(last.get('held_gradient_bytes')):>14}  {gib(last.get('held_optimizer_bytes')):>14}")
PY
  done
done
