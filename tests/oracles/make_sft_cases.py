#!/usr/bin/env python3
"""Oracle: what TRL's SFTTrainer computes at step 0, for dsalign's SFT parity test
(tests/test_sft_parity.cpp) to reproduce.

usage: make_sft_cases.py OUT_DIR

For each DeepSeek chat format F (deepseek-llm, deepseek-coder; each with its own tokenizer and the
chat template it ships), from fixed seeds:
  OUT_DIR/F/model/               a tiny LlamaForCausalLM (fp32, safetensors) with F's tokenizer files
  OUT_DIR/F/<case>.jsonl         the records dsalign reads (its own SFT record formats)
  OUT_DIR/F/expected.json        per case: TRL's loss, and per record (in file order) the input ids
                                 and the loss mask (1 where TRL's label is not -100, before the shift)
  OUT_DIR/F/grads.safetensors    per case, "<case>" = d loss / d GRAD_PARAM

The cases:
  completion  dsalign {"prompt", "response"} records (the prompt a string or messages with earlier
              turns, the response one assistant turn), given to TRL as conversational
              prompt-completion records: SFTTrainer's completion-only loss, the completion being
              everything the template renders after the generation prompt.
  messages    dsalign {"messages"} records, multi-turn, given to TRL as conversational language
              modeling records with assistant_only_loss=True. TRL takes the assistant mask from
              {% generation %} markers, which DeepSeek's shipped templates lack and TRL 1.16 has no
              training template for; so this oracle sets a copy of F's template with the markers
              around what each assistant turn renders after its generation prompt (the convention
              of TRL's own *_training.jinja templates), and checks that the copy renders every
              conversation byte for byte as the shipped template does.

The loss is TRL's compute_loss over one batch of all records (sum of per-token NLL over the
global number of loss tokens, as the Trainer's num_items_in_batch gives it), then backward.
fp32, CPU, about 20 s. Test oracle only; never used by dsalign at run time.
"""
import json
import os
import shutil
import sys
import tempfile

import torch
from datasets import Dataset
from safetensors.torch import save_file
from transformers import AutoTokenizer, LlamaForCausalLM

from trl_oracle_util import FORMATS, TOK_ROOT, a, quiet, s, tiny_config, u

GRAD_PARAM = "model.layers.0.mlp.down_proj.weight"


# dsalign records; the prompt is a string (one user turn) or a message list.
COMPLETION = [
    {"prompt": "Write a Python function that squares a number.", "response": "```python\ndef square(x):\n    return x * x\n```"},
    {"prompt": [s("Answer in one word."), u("What colour is the sky?")], "response": "Blue."},
    {"prompt": [u("Name a prime."), a("Seven."), u("Another one?")], "response": "Eleven."},
    {"prompt": "用一句话解释什么是哈希表。", "response": "哈希表是用哈希函数把键映射到存储位置的数据结构。"},
]

MESSAGES = [
    {"messages": [u("How do I list files in a directory in Python?"), a("Use `os.listdir(path)`."),
                  u("And recursively?"), a("Use `os.walk(path)` or `pathlib.Path(path).rglob('*')`.")]},
    {"messages": [s("You are a helpful assistant."), u("Hi!"), a("Hello! How can I help?"), u("2+2?"), a("4")]},
    {"messages": [u("写一个 Rust 的 hello world。"), a("```rust\nfn main() {\n    println!(\"Hello, world!\");\n}\n```")]},
]


def to_trl_completion(record):
    prompt = record["prompt"] if isinstance(record["prompt"], list) else [u(record["prompt"])]
    return {"prompt": prompt, "completion": [a(record["response"])]}


# What each assistant turn renders after its generation prompt, wrapped in {% generation %}.
MARKERS = {
    "deepseek-llm": ("{{ 'Assistant: ' + message['content'] + eos_token }}",
                     "{{ 'Assistant:' }}{% generation %}{{ ' ' + message['content'] + eos_token }}{% endgeneration %}"),
    "deepseek-coder": ("{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}",
                       "{{'### Response:\\n'}}{% generation %}{{message['content'] + '\\n<|EOT|>\\n'}}{% endgeneration %}"),
}


def marked_template(fmt, shipped):
    old, new = MARKERS[fmt]
    assert shipped.count(old) == 1, f"{fmt}: the shipped template changed; cannot place the generation markers"
    return shipped.replace(old, new)


def run_case(model_dir, tokenizer, rows, assistant_only_loss):
    from trl import SFTConfig, SFTTrainer
    model = LlamaForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).train()
    with tempfile.TemporaryDirectory() as tmp:
        args = SFTConfig(output_dir=tmp, per_device_train_batch_size=len(rows), max_length=None, packing=False,
                         padding_free=False, assistant_only_loss=assistant_only_loss, report_to=[], use_cpu=True,
                         bf16=False, fp16=False, seed=0, logging_steps=1)
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        examples = [trainer.train_dataset[i] for i in range(len(rows))]
        inputs = trainer.data_collator(examples)
        model.zero_grad()
        # The Trainer passes the step's loss-token count (after the label shift) as num_items_in_batch.
        num_items = (inputs["labels"][:, 1:] != -100).sum()
        loss = trainer.compute_loss(model, inputs, num_items_in_batch=num_items)
        loss.backward()
        records = []
        for i, example in enumerate(examples):
            n = int(inputs["attention_mask"][i].sum())
            assert inputs["attention_mask"][i][:n].all(), "expected right padding"
            ids = inputs["input_ids"][i][:n].tolist()
            assert ids == list(example["input_ids"])
            mask = (inputs["labels"][i][:n] != -100).int().tolist()
            records.append({"ids": ids, "loss_mask": mask})
        return {"loss": loss.item(), "records": records}, model.get_parameter(GRAD_PARAM).grad.detach().clone()


def make_format_cases(fmt, out_root):
    tok_dir = os.path.join(TOK_ROOT, fmt)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    model_dir = os.path.join(out_root, "model")
    torch.manual_seed(0)
    LlamaForCausalLM(tiny_config(tokenizer)).save_pretrained(model_dir)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(model_dir, f))

    expected, grads = {"grad_param": GRAD_PARAM, "cases": {}}, {}
    for name, records in (("completion", COMPLETION), ("messages", MESSAGES)):
        with open(os.path.join(out_root, name + ".jsonl"), "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    expected["cases"]["completion"], grads["completion"] = run_case(
        model_dir, tokenizer, [to_trl_completion(r) for r in COMPLETION], assistant_only_loss=False)

    shipped = tokenizer.chat_template
    marked = marked_template(fmt, shipped)
    for r in MESSAGES:
        assert (tokenizer.apply_chat_template(r["messages"], tokenize=False, chat_template=marked) ==
                tokenizer.apply_chat_template(r["messages"], tokenize=False, chat_template=shipped))
    tokenizer.chat_template = marked
    expected["cases"]["messages"], grads["messages"] = run_case(model_dir, tokenizer, MESSAGES, assistant_only_loss=True)

    with open(os.path.join(out_root, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    save_file({k: v.contiguous() for k, v in grads.items()}, os.path.join(out_root, "grads.safetensors"))


def main():
    quiet()
    for fmt in FORMATS:
        out_root = os.path.join(sys.argv[1], fmt)
        os.makedirs(out_root, exist_ok=True)
        make_format_cases(fmt, out_root)


if __name__ == "__main__":
    main()
