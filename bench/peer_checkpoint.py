"""The peers of bench_checkpoint: the same model (OUT/config.json, fp32) with torch's AdamW state,
checkpointed several times in a row by
  hf:        what transformers' Trainer does, synchronously: save_pretrained + torch.save of the
             optimizer's state_dict (the step loop waits for all of it);
  dcp:       torch.distributed.checkpoint.async_save, its default stager (the loop waits for the
             copy to host; the write runs in a thread);
  dcp-cache: async_save through one FileSystemWriter(cache_staged_state_dict=True), which keeps
             its host copy from one checkpoint to the next (as dsalign does); its copy is pinned
             memory, so it needs a GPU.
One JSON line per checkpoint, with the same keys as dsalign_bench_checkpoint's.
  python bench/peer_checkpoint.py OUT hf|dcp|dcp-cache [checkpoints=3] [device=cpu]
"""
import json
import os
import resource
import shutil
import sys
import time

import torch
import torch.distributed.checkpoint as dcp
from transformers import LlamaConfig, LlamaForCausalLM


def usage():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_stime, u.ru_minflt, u.ru_maxrss * 1024


def main():
    out, mode = sys.argv[1], sys.argv[2]
    checkpoints = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    device = sys.argv[4] if len(sys.argv) > 4 else "cpu"
    if mode == "dcp-cache" and not torch.cuda.is_available():
        sys.exit("peer_checkpoint.py: dcp-cache stages into pinned memory, which needs a GPU")
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig.from_pretrained(out)).float().to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()  # creates exp_avg and exp_avg_sq
    optimizer.zero_grad(set_to_none=True)
    state_bytes = sum(3 * p.numel() * p.element_size() for p in model.parameters())
    writer = dcp.FileSystemWriter(os.path.join(out, "peer_dcp"), cache_staged_state_dict=True) if mode == "dcp-cache" else None
    previous = None
    for k in range(1, checkpoints + 1):
        path = os.path.join(out, f"peer_{mode}_step_{k}")
        before = usage()
        start = time.perf_counter()
        future = None
        if mode == "hf":
            model.save_pretrained(path)
            torch.save(optimizer.state_dict(), os.path.join(path, "optimizer.pt"))
        elif mode in ("dcp", "dcp-cache"):
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict()}
            future = dcp.async_save(state, checkpoint_id=path, storage_writer=writer, no_dist=True)
        else:
            sys.exit(f"unknown mode {mode!r}: expected hf, dcp or dcp-cache")
        stall = time.perf_counter() - start
        after = usage()
        write_start = time.perf_counter()
        if future is not None:
            future.result()
        write = time.perf_counter() - write_start
        print(json.dumps({"peer": mode, "device": device, "checkpoint": k, "state_bytes": state_bytes, "stall_s": stall,
                          "write_after_stall_s": write, "stall_gib_per_s": state_bytes / stall / 2**30,
                          "stall_sys_s": after[0] - before[0], "stall_minor_faults": after[1] - before[1],
                          "max_rss_bytes": after[2]}), flush=True)
        if previous:
            shutil.rmtree(previous)  # keep one, as the dsalign run does
        previous = path
    shutil.rmtree(previous)


if __name__ == "__main__":
    main()
