#!/usr/bin/env bash
# The main job: the DeepSeek LLM chat recipe in miniature, on CPU, in a few minutes.
# recipes/quickstart/pipeline.yaml makes a tiny deepseek-coder-architecture model, gives it a
# little plain-text "pretraining", runs stage-1 SFT (general, math, code) and stage-2 SFT (math
# and code removed) with the repetition ratio measured on held-out prompts, then DPO on synthetic
# preference pairs against the frozen stage-2 model, and exports a bf16 chat checkpoint of it. Then this script shows the loss curves, the repetition ratios and a few
# answers from the chat checkpoint. Everything it reads is in the repository.
# usage: scripts/quickstart.sh [--fresh]   (--fresh: start over instead of reusing finished stages)
set -euo pipefail
source "$(dirname "$0")/env.sh"
dsalign="$DSALIGN_BUILD/dsalign"
out="$DSALIGN_ROOT/runs/quickstart"
from=()
if [[ "${1:-}" == "--fresh" ]]; then from=(--from init); fi

"$dsalign" run "$DSALIGN_ROOT/recipes/quickstart/pipeline.yaml" "${from[@]}"

echo
echo "== loss (first -> last logged step) and repetition ratio per stage"
for stage in pretrain sft_stage1 sft_stage2; do
  python3 - "$out/$stage/metrics.jsonl" "$stage" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
loss = [r for r in rows if "loss" in r]
rep = [r for r in rows if "repetition_ratio" in r]
text = f"{sys.argv[2]:>11}: loss {loss[0]['loss']:.3f} (step {loss[0]['step']}) -> {loss[-1]['loss']:.3f} (step {loss[-1]['step']})"
if rep:
    text += "; repetition ratio " + ", ".join(f"{r['repetition_ratio']:.2f} at step {r['step']}" for r in rep)
print(text)
PY
done

echo
echo "== DPO: reward accuracy and margin on the held-out pairs, before -> after"
python3 - "$out/dpo/metrics.jsonl" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
val = [r for r in rows if "val_rewards/accuracy" in r]
train = [r for r in rows if "rewards/accuracy" in r]
print(f"        dpo: held-out reward accuracy {val[0]['val_rewards/accuracy']:.2f} (step {val[0]['step']}) -> "
      f"{val[-1]['val_rewards/accuracy']:.2f} (step {val[-1]['step']}), margin {val[0]['val_rewards/margin']:.2f} -> "
      f"{val[-1]['val_rewards/margin']:.2f}; loss {train[0]['loss']:.3f} -> {train[-1]['loss']:.3f}")
PY

echo
echo "== the chat checkpoint answers (greedy)"
"$dsalign" generate --model "$out/chat" --max-new-tokens 32 \
  --prompt "Greet Oscar." --prompt "What colour is a lemon?" --prompt "What is the capital of Norway?"

cat <<EOF

== where everything is
  runs/quickstart/init/                 the tiny model (random weights) with the deepseek-coder tokenizer
  runs/quickstart/pretrain/             plain-text pretraining run: config.yaml, metrics.jsonl, checkpoints/, final/
  runs/quickstart/sft_stage1/           stage-1 SFT run; repetition/step_<N>.jsonl: repetition reports
  runs/quickstart/sft_stage2/           stage-2 SFT run (math and code filtered out)
  runs/quickstart/dpo/                  DPO run: metrics.jsonl has loss, rewards/*, logps/*, val_* per logged step
  runs/quickstart/chat/                 the exported chat checkpoint of the DPO model (Hugging Face layout, bf16)
Try: $dsalign eval repetition --model runs/quickstart/chat --prompts recipes/quickstart/data/heldout_prompts.jsonl
EOF
