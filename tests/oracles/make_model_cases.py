#!/usr/bin/env python3
"""Oracle: tiny LlamaForCausalLM checkpoints with random weights, and what Hugging Face
transformers computes on them. dsalign's parity tests (tests/test_parity.cpp) load each case and
must reproduce these logits and losses.

usage: make_model_cases.py OUT_DIR

Each case OUT_DIR/<case>/ holds model/ (a checkpoint in the form the case names) and
expected.safetensors with:
  ids [B, T] int64, logits [B, T, V] fp32, loss [] fp32        (labels = ids, transformers' shift)
  pad_ids [B, T], pad_mask [B, T] int64, pad_logits [B, T, V]    (row 1 right-padded)
  packed_ids [1, 21], packed_positions [1, 21], packed_logits [1, 21, V]
      (three documents of 5, 9 and 7 tokens in one row; the logits are transformers' for each
      document run on its own, which a packed row must reproduce)
  ref_logits [B, T, V] fp32 (bf16 cases only: the same bf16 weights run in fp32)
Runs on CPU in a few seconds; test oracle only, never used by dsalign at run time.
"""
import json
import os
import sys

import torch
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

SEQ = 24


def base_config(**overrides):
    cfg = dict(hidden_size=64, intermediate_size=172, num_hidden_layers=3, num_attention_heads=4,
               num_key_value_heads=4, vocab_size=1000, rms_norm_eps=1e-6, rope_theta=10000.0,
               max_position_embeddings=4096, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    cfg.update(overrides)
    return LlamaConfig(**cfg)


def save_bin_shards(model, out, n_shards):
    """The layout deepseek-llm ships: pytorch_model-0000i-of-0000N.bin + pytorch_model.bin.index.json,
    each shard a torch.save'd state dict (zip format)."""
    os.makedirs(out, exist_ok=True)
    model.config.save_pretrained(out)
    state = model.state_dict()
    names = list(state)
    per = (len(names) + n_shards - 1) // n_shards
    weight_map = {}
    for i in range(n_shards):
        fname = f"pytorch_model-{i + 1:05d}-of-{n_shards:05d}.bin"
        part = {k: state[k].clone() for k in names[i * per:(i + 1) * per]}
        torch.save(part, os.path.join(out, fname))
        weight_map.update({k: fname for k in part})
    total = sum(t.numel() * t.element_size() for t in state.values())
    with open(os.path.join(out, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


def rewrite_config_v4_style(out, rope_scaling, rope_theta):
    """Write config.json the way DeepSeek's published files spell RoPE (top-level rope_theta and
    rope_scaling), not transformers 5's rope_parameters."""
    path = os.path.join(out, "config.json")
    with open(path) as f:
        cfg = json.load(f)
    cfg.pop("rope_parameters", None)
    cfg["rope_theta"] = rope_theta
    cfg["rope_scaling"] = rope_scaling
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2)


def record(model, out, dtype, vocab, with_reference):
    gen = torch.Generator().manual_seed(7)
    ids = torch.randint(0, vocab, (2, SEQ), generator=gen)
    pad_ids = ids.clone()
    pad_mask = torch.ones_like(ids)
    pad_mask[1, SEQ - 7:] = 0
    pad_ids[1, SEQ - 7:] = 0
    model = model.to(dtype).eval()
    with torch.no_grad():
        o = model(input_ids=ids, labels=ids)
        p = model(input_ids=pad_ids, attention_mask=pad_mask)
        tensors = {"ids": ids, "logits": o.logits.float().contiguous(), "loss": o.loss.float().reshape(()),
                   "pad_ids": pad_ids, "pad_mask": pad_mask, "pad_logits": p.logits.float().contiguous()}
        docs = [torch.randint(0, vocab, (1, n), generator=gen) for n in (5, 9, 7)]
        tensors["packed_ids"] = torch.cat(docs, 1)
        tensors["packed_positions"] = torch.cat([torch.arange(d.shape[1]) for d in docs]).unsqueeze(0)
        tensors["packed_logits"] = torch.cat([model(input_ids=d).logits.float() for d in docs], 1).contiguous()
        if with_reference:
            ref = model.float()(input_ids=ids).logits
            tensors["ref_logits"] = ref.contiguous()
    save_file(tensors, os.path.join(out, "expected.safetensors"))


def main():
    out_root = sys.argv[1]
    os.makedirs(out_root, exist_ok=True)
    torch.manual_seed(0)

    # 1. MHA like deepseek-llm-7b, fp32, as PyTorch .bin shards with an index; generation_config.json
    #    overrides config.json's bos/eos as deepseek-llm's does.
    case = os.path.join(out_root, "mha_bin")
    m = LlamaForCausalLM(base_config()).eval()
    save_bin_shards(m, os.path.join(case, "model"), 3)
    with open(os.path.join(case, "model", "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": 900, "eos_token_id": 901}, f)
    record(m, case, torch.float32, 1000, False)

    # 2. GQA 8:1 like deepseek-llm-67b, sharded safetensors.
    case = os.path.join(out_root, "gqa_safetensors")
    m = LlamaForCausalLM(base_config(hidden_size=128, num_attention_heads=8, num_key_value_heads=1,
                                     intermediate_size=344)).eval()
    m.save_pretrained(os.path.join(case, "model"), max_shard_size="200KB")
    record(m, case, torch.float32, 1000, False)

    # 3. deepseek-coder-33b style: GQA 7:1, rope_theta 100000 with linear x4, 16384 positions, bf16
    #    on disk, config.json spelled as DeepSeek publishes it.
    case = os.path.join(out_root, "coder_linear_bf16")
    scaling = {"type": "linear", "factor": 4.0}
    m = LlamaForCausalLM(base_config(hidden_size=112, num_attention_heads=14, num_key_value_heads=2,
                                     intermediate_size=300, rope_theta=100000.0, rope_scaling=scaling,
                                     max_position_embeddings=16384)).eval()
    m = m.to(torch.bfloat16)
    m.save_pretrained(os.path.join(case, "model"))
    rewrite_config_v4_style(os.path.join(case, "model"), scaling, 100000.0)
    m = LlamaForCausalLM.from_pretrained(os.path.join(case, "model"), dtype=torch.bfloat16).eval()
    record(m, case, torch.bfloat16, 1000, True)

    # 4. Tied embeddings.
    case = os.path.join(out_root, "tied")
    m = LlamaForCausalLM(base_config(tie_word_embeddings=True, num_key_value_heads=2)).eval()
    m.save_pretrained(os.path.join(case, "model"))
    record(m, case, torch.float32, 1000, False)

    # 5. llama3 rope scaling.
    case = os.path.join(out_root, "rope_llama3")
    m = LlamaForCausalLM(base_config(rope_theta=500000.0, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16})).eval()
    m.save_pretrained(os.path.join(case, "model"))
    record(m, case, torch.float32, 1000, False)

    # 6. Dynamic NTK scaling, exercised past max_position_embeddings (16 < SEQ).
    case = os.path.join(out_root, "rope_dynamic")
    m = LlamaForCausalLM(base_config(max_position_embeddings=16, rope_scaling={"type": "dynamic", "factor": 2.0})).eval()
    m.save_pretrained(os.path.join(case, "model"))
    record(m, case, torch.float32, 1000, False)

    print(f"oracle: wrote 6 transformers cases to {out_root}")


if __name__ == "__main__":
    main()
