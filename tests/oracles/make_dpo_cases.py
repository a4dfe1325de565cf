#!/usr/bin/env python3
"""Oracle: what TRL's preference trainers compute at step 0, for dsalign's DPO parity test
(tests/test_dpo_parity.cpp) to reproduce.

usage: make_dpo_cases.py OUT_DIR

Writes, from fixed seeds, for each DeepSeek chat format F (deepseek-llm, deepseek-coder; each
with its own tokenizer and the chat template it ships):
  OUT_DIR/F/policy/, OUT_DIR/F/reference/  tiny LlamaForCausalLM checkpoints (fp32, safetensors)
                                        with F's tokenizer files; the reference is the policy with
                                        perturbed weights, so rewards are not zero
  OUT_DIR/F/pairs.jsonl                 conversational preference pairs ({prompt, chosen, rejected}
                                        as message lists), the file both TRL and dsalign read
  OUT_DIR/F/expected.json               per loss case: TRL's loss, per-pair policy and reference
                                        log-probs, its logged rewards/* and logps/* metrics; and the
                                        token ids TRL trained on (prompt_ids, chosen_ids,
                                        rejected_ids per pair)
  OUT_DIR/F/grads.safetensors           per case, "<case>" = d loss / d GRAD_PARAM of the policy

TRL's completion is everything the template renders after the generation prompt: for
deepseek-coder that is "content\n<|EOT|>\n", so its chosen_ids end with <|EOT|> and a newline.

How each dsalign loss maps onto TRL 1.16 (the version pinned in scripts/requirements-oracles.txt):
  sigmoid   DPOTrainer loss_type=["sigmoid"]
  cdpo      sigmoid with label smoothing (conservative DPO). TRL 1.x dropped label smoothing from
            "sigmoid"; its "aot" branch keeps the expression -(1-e) logsig(b h) - e logsig(-b h),
            and with one pair per batch its sorts are the identity, so h is DPO's logit. The
            oracle runs one pair per call and averages, which is the batch mean.
  robust    DPOTrainer loss_type=["robust"] (label_smoothing = flip probability)
  ipo       DPOTrainer loss_type=["ipo"] (TRL normalises the log-ratios by completion length)
  hinge     DPOTrainer loss_type=["hinge"]
  rpo       DPOTrainer loss_type=["sigmoid", "sft"], loss_weights=[1, alpha]
  simpo     experimental CPOTrainer loss_type="simpo", cpo_alpha=0 (reference-free), fed the same
            token ids through its concatenated_forward / get_batch_logps / cpo_loss
Runs on CPU in under a minute. Test oracle only; never used by dsalign at run time.
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

from trl_oracle_util import TOK_ROOT, a, quiet, s, tiny_config, u

GRAD_PARAM = "model.layers.1.self_attn.q_proj.weight"


LLM_PAIRS = [
    {"prompt": [u("What is the capital of France?")],
     "chosen": [a("The capital of France is Paris.")],
     "rejected": [a("France is a country in Europe. Its capital is Lyon, I think, or maybe Marseille.")]},
    {"prompt": [s("You are a careful assistant."), u("Write a Python function that adds two numbers.")],
     "chosen": [a("```python\ndef add(a, b):\n    return a + b\n```")],
     "rejected": [a("def add(a, b): return a - b")]},
    {"prompt": [u("Tell me a joke."), a("Why did the chicken cross the road?"), u("Why?")],
     "chosen": [a("To get to the other side.")],
     "rejected": [a("I don't know.")]},
    {"prompt": [u("用一句话介绍深度求索。")],
     "chosen": [a("深度求索是一家专注于通用人工智能研究的公司。")],
     "rejected": [a("不知道。不知道。不知道。")]},
]

# deepseek-coder: no system message (so the template's default system prompt), a system message of
# our own, a multi-turn prompt, code, Chinese.
CODER_PAIRS = [
    {"prompt": [u("Write a Python function that reverses a string.")],
     "chosen": [a("```python\ndef reverse(s):\n    return s[::-1]\n```")],
     "rejected": [a("def reverse(s): return s")]},
    {"prompt": [s("You are a terse code reviewer."), u("Is `x == None` fine in Python?")],
     "chosen": [a("Use `x is None`: `==` can be overridden.")],
     "rejected": [a("Yes, it is always fine.")]},
    {"prompt": [u("What does `git stash` do?"), a("It shelves your uncommitted changes."), u("How do I get them back?")],
     "chosen": [a("Run `git stash pop`.")],
     "rejected": [a("You cannot get them back.")]},
    {"prompt": [u("用 C 语言写一个返回两个整数中较大者的函数。")],
     "chosen": [a("```c\nint max(int a, int b) { return a > b ? a : b; }\n```")],
     "rejected": [a("```c\nint max(int a, int b) { return a; }\n```")]},
    {"prompt": [u("Explain recursion in one sentence.")],
     "chosen": [a("A function that solves a problem by calling itself on smaller inputs.")],
     "rejected": [a("Recursion is recursion is recursion is recursion.")]},
]

PAIRS = {"deepseek-llm": LLM_PAIRS, "deepseek-coder": CODER_PAIRS}

CASES = {
    "sigmoid": dict(beta=0.1),
    "cdpo": dict(beta=0.1, label_smoothing=0.2),
    "robust": dict(beta=0.1, label_smoothing=0.2),
    "ipo": dict(beta=0.1),
    "hinge": dict(beta=0.1),
    "rpo": dict(beta=0.1, rpo_alpha=0.5),
    "simpo": dict(beta=2.0, simpo_gamma=1.0),
}


def save_checkpoint(model, out, tok_dir):
    model.save_pretrained(out)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(tok_dir, f), os.path.join(out, f))


def load(path):
    return LlamaForCausalLM.from_pretrained(path, torch_dtype=torch.float32).train()


def dpo_trainer(out_dir, tokenizer, dataset, loss_types, loss_weights, beta, label_smoothing, policy, reference):
    from trl import DPOConfig, DPOTrainer
    args = DPOConfig(output_dir=out_dir, per_device_train_batch_size=len(dataset), beta=beta, loss_type=loss_types,
                     loss_weights=loss_weights, label_smoothing=label_smoothing, report_to=[], use_cpu=True,
                     bf16=False, fp16=False, max_length=None, remove_unused_columns=False, seed=0,
                     logging_steps=1)
    return DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=dataset, processing_class=tokenizer)


def run_dpo_case(name, params, out_root, tokenizer, dataset):
    policy, reference = load(os.path.join(out_root, "policy")), load(os.path.join(out_root, "reference"))
    reference.eval()
    beta, ls = params["beta"], params.get("label_smoothing", 0.0)
    if name == "cdpo":
        types, weights = ["aot"], None
    elif name == "rpo":
        types, weights = ["sigmoid", "sft"], [1.0, params["rpo_alpha"]]
    else:
        types, weights = [name], None
    with tempfile.TemporaryDirectory() as tmp:
        trainer = dpo_trainer(tmp, tokenizer, dataset, types, weights, beta, ls, policy, reference)
        n = len(dataset)
        rows = [trainer.train_dataset[i] for i in range(n)]
        batches = [[r] for r in rows] if name == "cdpo" else [rows]
        policy.zero_grad()
        loss_total = 0.0
        for b in batches:
            inputs = trainer.data_collator(b)
            loss = trainer.compute_loss(policy, inputs)
            (loss * len(b) / n).backward()
            loss_total += loss.item() * len(b) / n
        m = trainer._metrics["train"]
        # Each metric was appended once per call as the mean over that call's pairs.
        mean = lambda key: sum(m[key]) / len(m[key])
        per_pair = per_pair_logps(trainer, policy, reference, rows)
        result = {"loss": loss_total,
                  "rewards/chosen": mean("rewards/chosen"), "rewards/rejected": mean("rewards/rejected"),
                  "rewards/accuracy": mean("rewards/accuracies"), "rewards/margin": mean("rewards/margins"),
                  "logps/chosen": mean("logps/chosen"), "logps/rejected": mean("logps/rejected"), **per_pair}
        ids = [{"prompt_ids": r["prompt_ids"], "chosen_ids": r["chosen_ids"], "rejected_ids": r["rejected_ids"]}
               for r in rows]
        return result, policy.get_parameter(GRAD_PARAM).grad.detach().clone(), ids


def per_pair_logps(trainer, policy, reference, rows):
    """TRL's own per-sequence log-probs (its reference path, run on both models)."""
    inputs = trainer.data_collator(rows)
    out = {}
    for key, model in (("policy", policy), ("reference", reference)):
        chosen, rejected = trainer.compute_ref_log_probs(model, inputs)
        out[f"{key}_chosen_logps"] = chosen.tolist()
        out[f"{key}_rejected_logps"] = rejected.tolist()
    return out


def run_simpo_case(params, out_root, tokenizer, dataset, ids):
    from trl.experimental.cpo import CPOConfig, CPOTrainer
    policy = load(os.path.join(out_root, "policy"))
    with tempfile.TemporaryDirectory() as tmp:
        args = CPOConfig(output_dir=tmp, per_device_train_batch_size=len(ids), beta=params["beta"],
                         loss_type="simpo", simpo_gamma=params["simpo_gamma"], cpo_alpha=0.0, report_to=[],
                         use_cpu=True, bf16=False, remove_unused_columns=False)
        flat = Dataset.from_list([{"prompt": "q", "chosen": "a", "rejected": "b"}])
        trainer = CPOTrainer(model=policy, args=args, train_dataset=flat, processing_class=tokenizer)
        # The same token ids the DPO cases used, in CPOTrainer's batch layout.
        batch = {}
        for side in ("chosen", "rejected"):
            seqs = [torch.tensor(p["prompt_ids"] + p[f"{side}_ids"]) for p in ids]
            labels = [torch.tensor([-100] * len(p["prompt_ids"]) + p[f"{side}_ids"]) for p in ids]
            batch[f"{side}_input_ids"] = torch.nn.utils.rnn.pad_sequence(seqs, batch_first=True,
                                                                         padding_value=tokenizer.pad_token_id)
            batch[f"{side}_attention_mask"] = torch.nn.utils.rnn.pad_sequence(
                [torch.ones_like(x) for x in seqs], batch_first=True, padding_value=0)
            batch[f"{side}_labels"] = torch.nn.utils.rnn.pad_sequence(labels, batch_first=True, padding_value=-100)
        policy.zero_grad()
        loss, metrics = trainer.get_batch_loss_metrics(policy, batch)
        loss.backward()
        chosen, rejected = trainer.concatenated_forward(policy, batch)[:2]
        result = {"loss": loss.item(),
                  "rewards/chosen": metrics["rewards/chosen"], "rewards/rejected": metrics["rewards/rejected"],
                  "rewards/accuracy": metrics["rewards/accuracies"], "rewards/margin": metrics["rewards/margins"],
                  "logps/chosen": metrics["logps/chosen"], "logps/rejected": metrics["logps/rejected"],
                  "policy_chosen_logps": chosen.tolist(), "policy_rejected_logps": rejected.tolist()}
        return result, policy.get_parameter(GRAD_PARAM).grad.detach().clone()


def make_format_cases(fmt, pairs, out_root):
    tok_dir = os.path.join(TOK_ROOT, fmt)
    tokenizer = AutoTokenizer.from_pretrained(tok_dir, local_files_only=True)
    torch.manual_seed(0)
    policy = LlamaForCausalLM(tiny_config(tokenizer))
    save_checkpoint(policy, os.path.join(out_root, "policy"), tok_dir)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    save_checkpoint(policy, os.path.join(out_root, "reference"), tok_dir)

    with open(os.path.join(out_root, "pairs.jsonl"), "w", encoding="utf-8") as f:
        for p in pairs:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    dataset = Dataset.from_list(pairs)

    expected, grads, ids = {"grad_param": GRAD_PARAM, "cases": {}}, {}, None
    for name, params in CASES.items():
        if name == "simpo":
            continue
        result, grad, ids = run_dpo_case(name, params, out_root, tokenizer, dataset)
        expected["cases"][name] = {"params": params, **result}
        grads[name] = grad
    result, grad = run_simpo_case(CASES["simpo"], out_root, tokenizer, dataset, ids)
    expected["cases"]["simpo"] = {"params": CASES["simpo"], **result}
    grads["simpo"] = grad
    expected["pairs"] = ids
    with open(os.path.join(out_root, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    save_file({k: v.contiguous() for k, v in grads.items()}, os.path.join(out_root, "grads.safetensors"))


def main():
    quiet()
    for fmt, pairs in PAIRS.items():
        out_root = os.path.join(sys.argv[1], fmt)
        os.makedirs(out_root, exist_ok=True)
        make_format_cases(fmt, pairs, out_root)


if __name__ == "__main__":
    main()
