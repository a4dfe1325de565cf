"""The peer of dsalign_bench_dpo on a GPU: one DPO step (sigmoid loss, beta 0.1) written plainly
with transformers: a frozen bf16 reference scored under no_grad, the policy (fp32 master weights,
bf16 autocast, torch's fused AdamW) on chosen and rejected in one forward, response = the last
three quarters of each sequence, on the deepseek-coder-1.3b shape with random tokens. Prints one
JSON line: name, tokens_per_s (policy tokens), step_s, peak_bytes.

    python3 bench/peer_dpo_step.py --seq 2048 --pairs 2 --steps 10
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

parser = argparse.ArgumentParser()
parser.add_argument("--seq", type=int, default=2048)
parser.add_argument("--pairs", type=int, default=2)
parser.add_argument("--steps", type=int, default=10)
parser.add_argument("--warmup", type=int, default=3)
args = parser.parse_args()

config = LlamaConfig(hidden_size=2048, intermediate_size=5504, num_hidden_layers=24, num_attention_heads=16,
                     num_key_value_heads=16, vocab_size=32256, max_position_embeddings=16384, rope_theta=100000.0,
                     rms_norm_eps=1e-6, tie_word_embeddings=False, attn_implementation="sdpa")
torch.manual_seed(0)
policy = LlamaForCausalLM(config).cuda()
reference = LlamaForCausalLM(config).cuda().to(torch.bfloat16).eval().requires_grad_(False)
reference.load_state_dict(policy.state_dict())
optimizer = torch.optim.AdamW(policy.parameters(), lr=5e-6, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
ids = torch.randint(0, config.vocab_size, (2 * args.pairs, args.seq), device="cuda")  # chosen rows, then rejected
response = torch.zeros_like(ids, dtype=torch.bool)
response[:, args.seq // 4:] = True


def sequence_logps(model):
    logits = model(input_ids=ids).logits[:, :-1].float()
    token_logps = torch.gather(logits.log_softmax(-1), 2, ids[:, 1:, None]).squeeze(2)
    return (token_logps * response[:, 1:]).sum(-1)


def step():
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        ref = sequence_logps(reference)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        pol = sequence_logps(policy)
    n = args.pairs
    margin = 0.1 * ((pol[:n] - ref[:n]) - (pol[n:] - ref[n:]))
    (-F.logsigmoid(margin).mean()).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


for _ in range(args.warmup):
    step()
torch.cuda.synchronize()
torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
for _ in range(args.steps):
    step()
torch.cuda.synchronize()
seconds = (time.perf_counter() - start) / args.steps
print(json.dumps({"name": "transformers dpo (live bf16 reference)", "bench": "dpo_step", "seq": args.seq,
                  "pairs": args.pairs, "tokens_per_s": 2 * args.pairs * args.seq / seconds, "step_s": seconds,
                  "peak_bytes": torch.cuda.max_memory_allocated()}))
