#!/usr/bin/env python3
"""Oracle: load a checkpoint directory written by dsalign with transformers and compare its logits
with dsalign's.

usage: check_hf_load.py CHECKPOINT_DIR LOGITS.safetensors
LOGITS.safetensors holds input_ids [B, T] and logits [B, T, V] (fp32) as `dsalign forward` writes
them. Exits 0 when max |diff| <= 1e-4 * max |logit| (fp32 weights), else 1. Test oracle only.
"""
import sys

import torch
from safetensors.torch import load_file
from transformers import LlamaForCausalLM


def main():
    ckpt, logits_file = sys.argv[1], sys.argv[2]
    data = load_file(logits_file)
    model = LlamaForCausalLM.from_pretrained(ckpt, dtype=torch.float32).eval()
    with torch.no_grad():
        hf = model(input_ids=data["input_ids"]).logits.float()
    ours = data["logits"]
    diff = (hf - ours).abs().max().item()
    scale = hf.abs().max().item()
    print(f"check_hf_load: max |diff| {diff:.3g}, max |logit| {scale:.3g}")
    sys.exit(0 if diff <= 1e-4 * scale else 1)


if __name__ == "__main__":
    main()
