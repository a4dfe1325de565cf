#!/usr/bin/env bash
# The main job: the DeepSeek LLM chat recipe in miniature, on CPU, in about 4 minutes.
# recipes/quickstart/pipeline.yaml makes a small deepseek-coder-architecture model, gives it a
# little plain-text "pretraining", runs stage-1 SFT (general, math, code) and stage-2 SFT (math
# and code removed), then DPO on synthetic preference pairs against the frozen stage-2 model, and
# exports a bf16 chat checkpoint of it; every stage measures its model on 100 held-out prompts
# (exact match, repetition ratio). Then this script shows the curves, the stage-by-stage table,
# and the chat checkpoint scored on the held-out prompts with answers drawn at random. Everything
# it reads is in the repository.
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
echo "== the exported chat checkpoint on the 100 held-out prompts (greedy; exact match after whitespace normalisation)"
"$dsalign" eval gen --task chat --model "$out/chat" --data "$DSALIGN_ROOT/recipes/quickstart/data/heldout.jsonl" \
  --out "$out/chat_heldout.jsonl" --samples 8 --seed 2026

"$dsalign" report "$out" --out "$out/report.html"

cat <<EOF

== where everything is
  runs/quickstart/init/                 the model of model.json (random weights) with the deepseek-coder tokenizer
  runs/quickstart/pretrain/             plain-text pretraining run: config.yaml, metrics.jsonl, checkpoints/, final/
  runs/quickstart/sft_stage1/           stage-1 SFT run; eval/step_<N>.jsonl: the held-out measurements
  runs/quickstart/sft_stage2/           stage-2 SFT run (math and code filtered out)
  runs/quickstart/dpo/                  DPO run: metrics.jsonl has loss, rewards/*, logps/*, val_* per logged step
  runs/quickstart/chat/                 the exported chat checkpoint of the DPO model (Hugging Face layout, bf16)
  runs/quickstart/*/tensorboard/        TensorBoard event files of each training stage
  runs/quickstart/report.html           every stage's curves and summary on one page (opens offline)
  runs/quickstart/chat_heldout.jsonl    the chat checkpoint's answer to every held-out prompt
Open runs/quickstart/report.html in a browser, or watch the runs in TensorBoard:
  tensorboard --logdir runs/quickstart      (pip install tensorboard; set-up's venv has it: $DSALIGN_VENV/bin/tensorboard)
Try: $dsalign generate --model runs/quickstart/chat --prompt "Greet Kimosa." --prompt "What is 31 plus 45?"
     $dsalign eval repetition --model runs/quickstart/pretrain/final --prompts recipes/quickstart/data/heldout.jsonl
EOF
