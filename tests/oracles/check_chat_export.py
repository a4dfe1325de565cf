#!/usr/bin/env python3
"""Oracle: a chat checkpoint exported by dsalign, loaded by transformers as a user would.

usage: check_chat_export.py EXPORT_DIR CASES.safetensors CHAT.json
CASES.safetensors: input_ids [B, T] and dsalign's fp32 logits [B, T, V] for the exported weights.
CHAT.json: {"prompt": user message, "prompt_ids": dsalign's chat-rendered ids,
            "response_ids": dsalign's greedy response (stop token included when it stopped),
            "max_new_tokens": N}.
Checks: AutoModelForCausalLM loads the directory; logits within 1e-4 * max|logit| (fp32 compute);
AutoTokenizer.apply_chat_template gives dsalign's prompt ids; generate (greedy, the directory's
generation_config) gives dsalign's response ids. Exits 1 on any mismatch. Test oracle only.
"""
import json
import sys

import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    export_dir, cases_file, chat_file = sys.argv[1:4]
    ok = True
    model = AutoModelForCausalLM.from_pretrained(export_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(export_dir)
    cases = load_file(cases_file)
    with torch.no_grad():
        hf = model(input_ids=cases["input_ids"]).logits.float()
    diff, scale = (hf - cases["logits"]).abs().max().item(), hf.abs().max().item()
    print(f"check_chat_export: logits max |diff| {diff:.3g}, max |logit| {scale:.3g}")
    ok &= diff <= 1e-4 * scale

    chat = json.load(open(chat_file))
    text = tokenizer.apply_chat_template([{"role": "user", "content": chat["prompt"]}], tokenize=False,
                                         add_generation_prompt=True)
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if ids != chat["prompt_ids"]:
        print(f"check_chat_export: prompt ids differ\n  transformers {ids}\n  dsalign      {chat['prompt_ids']}")
        ok = False
    with torch.no_grad():
        out = model.generate(torch.tensor([ids]), max_new_tokens=chat["max_new_tokens"], do_sample=False)
    response = out[0, len(ids):].tolist()
    if response != chat["response_ids"]:
        print(f"check_chat_export: greedy responses differ\n  transformers {response}\n  dsalign      {chat['response_ids']}")
        ok = False
    print(f"check_chat_export: eos {model.generation_config.eos_token_id}, response {len(response)} tokens, "
          f"{'ok' if ok else 'MISMATCH'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
