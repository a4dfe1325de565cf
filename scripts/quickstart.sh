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
echo "== every training stage: summary and curves (dsalign report --text)"
"$dsalign" report "$out" --text

echo
echo "== the chat checkpoint answers (greedy)"
"$dsalign" generate --model "$out/chat" --max-new-tokens 32 \
  --prompt "Greet Oscar." --prompt "What colour is a lemon?" --prompt "What is the capital of Norway?"

"$dsalign" report "$out" --out "$out/report.html"

cat <<EOF

== where everything is
  runs/quickstart/init/                 the tiny model (random weights) with the deepseek-coder tokenizer
  runs/quickstart/pretrain/             plain-text pretraining run: config.yaml, metrics.jsonl, checkpoints/, final/
  runs/quickstart/sft_stage1/           stage-1 SFT run; repetition/step_<N>.jsonl: repetition reports
  runs/quickstart/sft_stage2/           stage-2 SFT run (math and code filtered out)
  runs/quickstart/dpo/                  DPO run: metrics.jsonl has loss, rewards/*, logps/*, val_* per logged step
  runs/quickstart/chat/                 the exported chat checkpoint of the DPO model (Hugging Face layout, bf16)
  runs/quickstart/*/tensorboard/        TensorBoard event files of each training stage
  runs/quickstart/report.html           every stage's curves and summary on one page (opens offline)
Open runs/quickstart/report.html in a browser, or watch the runs in TensorBoard:
  tensorboard --logdir runs/quickstart      (pip install tensorboard; set-up's venv has it: $DSALIGN_VENV/bin/tensorboard)
Try: $dsalign eval repetition --model runs/quickstart/chat --prompts recipes/quickstart/data/heldout_prompts.jsonl
EOF
