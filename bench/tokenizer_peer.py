#!/usr/bin/env python3
"""The `tokenizers` library's encode throughput on the same corpus, for bench/tokenizer.sh.

usage: tokenizer_peer.py TOKENIZER_JSON CORPUS
Single thread: encode_batch with RAYON_NUM_THREADS=1 (no per-call Python overhead) after a
warm-up pass; batch: encode_batch on all cores. Benchmark peer only.
"""
import os
import subprocess
import sys
import time


def run(threads):
    from tokenizers import Tokenizer
    tok = Tokenizer.from_file(sys.argv[1])
    with open(sys.argv[2], encoding="utf-8") as f:
        docs = f.read().split("\n")
    mb = sum(len(d.encode("utf-8")) + 1 for d in docs) / 1e6
    tok.encode_batch(docs, add_special_tokens=False)  # warm-up, as for dsalign
    start = time.perf_counter()
    tok.encode_batch(docs, add_special_tokens=False)
    label = "single-thread" if threads == "1" else f"batch ({os.cpu_count()} threads)"
    print(f"tokenizers {label}: {mb / (time.perf_counter() - start):.2f} MB/s")


if __name__ == "__main__":
    if os.environ.get("_PEER_CHILD"):
        run(os.environ["RAYON_NUM_THREADS"])
    else:
        for threads in ("1", str(os.cpu_count())):
            env = dict(os.environ, RAYON_NUM_THREADS=threads, _PEER_CHILD="1", TOKENIZERS_PARALLELISM="true")
            subprocess.run([sys.executable] + sys.argv, env=env, check=True)
