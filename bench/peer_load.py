"""The peer of bench_load: transformers' from_pretrained (and, with --save, save_pretrained and
safetensors' save_file) on the same checkpoint, timed inside the process after the imports. One
JSON line, like dsalign_bench_load's.
On a GPU (--device cuda) from_pretrained loads straight onto it (device_map), timed until the
copies have finished.
  python bench/peer_load.py DIR bf16|fp32 [--save OUT_DIR] [--device cpu|cuda]
"""
import json
import resource
import sys
import time

import torch
from transformers import AutoModelForCausalLM


def usage():
    u = resource.getrusage(resource.RUSAGE_SELF)
    return u.ru_utime, u.ru_stime, u.ru_minflt, u.ru_majflt, u.ru_maxrss * 1024


def main():
    model_dir, dtype = sys.argv[1], sys.argv[2]
    flags = dict(zip(sys.argv[3::2], sys.argv[4::2]))
    save_dir, device = flags.get("--save"), flags.get("--device", "cpu")
    before = usage()
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype={"bf16": torch.bfloat16, "fp32": torch.float32}[dtype],
                                                 **({"device_map": device} if device != "cpu" else {}))
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    # Then read every byte: a tensor still backed by the file's memory map is loaded only when read
    # (dsalign's load leaves every byte in the model's own memory).
    with torch.no_grad():
        for p in model.parameters():
            p.view(-1).max()
    if device != "cpu":
        torch.cuda.synchronize()
    touched = time.perf_counter() - start
    after = usage()
    line = {"peer": "transformers.from_pretrained", "device": device, "dtype": dtype, "seconds": seconds, "all_bytes_read_s": touched,
            "param_bytes": sum(p.numel() * p.element_size() for p in model.parameters()),
            "user_s": after[0] - before[0], "sys_s": after[1] - before[1], "minor_faults": after[2] - before[2],
            "major_faults": after[3] - before[3], "max_rss_bytes": after[4]}
    if save_dir:
        start = time.perf_counter()
        model.save_pretrained(save_dir + "/save_pretrained")
        line["save_pretrained_s"] = time.perf_counter() - start
        from safetensors.torch import save_file
        start = time.perf_counter()
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, save_dir + "/save_file.safetensors")
        line["save_file_s"] = time.perf_counter() - start
    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
