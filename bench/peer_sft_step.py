"""The peer of dsalign_bench_step: one SFT step of transformers' LlamaForCausalLM (forward,
backward, torch's AdamW: fused on a GPU), fp32 master weights (under bf16 autocast with
--compute-dtype bf16), with random tokens, on the deepseek-coder-1.3b shape or a config.json's.
Modes: eager, compile (torch.compile), liger (Liger-Kernel's RoPE, RMSNorm, SwiGLU and fused
linear cross-entropy patched in), liger-compile. Prints one JSON line: name, tokens_per_s,
step_s, peak_bytes (CUDA allocator peak on a GPU, peak RSS on CPU).

    python3 bench/peer_sft_step.py --seq 4096 --batch 2 --mode liger --steps 10
    python3 bench/peer_sft_step.py --config DIR --device cpu --compute-dtype fp32 --seq 512 --steps 5
"""
import argparse
import json
import resource
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("--seq", type=int, default=4096)
parser.add_argument("--batch", type=int, default=2)
parser.add_argument("--mode", choices=["eager", "compile", "liger", "liger-compile"], default="eager")
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--warmup", type=int, default=3)
parser.add_argument("--config", help="a directory with config.json (default: the deepseek-coder-1.3b shape)")
parser.add_argument("--device", default="cuda")
parser.add_argument("--compute-dtype", choices=["fp32", "bf16"], default="bf16")
args = parser.parse_args()
cuda = args.device == "cuda"

if args.config:
    config = LlamaConfig.from_pretrained(args.config, attn_implementation="sdpa")
else:  # deepseek-coder-1.3b-base's config.json (dsalign's "deepseek-coder-1.3b" preset)
    config = LlamaConfig(hidden_size=2048, intermediate_size=5504, num_hidden_layers=24, num_attention_heads=16,
                         num_key_value_heads=16, vocab_size=32256, max_position_embeddings=16384,
                         rope_theta=100000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, attn_implementation="sdpa")
if args.mode.startswith("liger"):
    from liger_kernel.transformers import apply_liger_kernel_to_llama

    apply_liger_kernel_to_llama(rope=True, rms_norm=True, swiglu=True, fused_linear_cross_entropy=True)
torch.manual_seed(0)
model = LlamaForCausalLM(config).to(args.device)
if args.mode.endswith("compile"):
    model = torch.compile(model)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, betas=(0.9, 0.95), weight_decay=0.1, fused=cuda)
ids = torch.randint(0, config.vocab_size, (args.batch, args.seq), device=args.device)


def step():
    with torch.autocast(args.device, dtype=torch.bfloat16, enabled=args.compute_dtype == "bf16"):
        loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


for _ in range(args.warmup):
    step()
if cuda:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
for _ in range(args.steps):
    step()
if cuda:
    torch.cuda.synchronize()
seconds = (time.perf_counter() - start) / args.steps
peak = torch.cuda.max_memory_allocated() if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"name": f"transformers {args.mode}", "bench": "sft_step", "seq": args.seq, "batch": args.batch,
                  "tokens_per_s": args.batch * args.seq / seconds, "step_s": seconds, "peak_bytes": peak}))
