#!/usr/bin/env python3
"""Seeds for the checkpoint fuzz targets, written by the real writers (safetensors, torch.save).

usage: make_seeds.py OUT_DIR [TOKENIZER_JSON ...]
Writes OUT_DIR/safetensors_header/*.safetensors, OUT_DIR/torch_bin/*.bin (whole torch.save
zips, and one rewritten with zip64 records) and OUT_DIR/torch_pickle/*.pkl (their data.pkl records): several dtypes, empty and scalar tensors, metadata, parameters, tied
weights sharing a storage, views with offsets. Each TOKENIZER_JSON is cut down to its first 400
tokens and the merges among them (OUT_DIR/tokenizer_json/): the structure of the real file in a
size a fuzzer can mutate. Used by scripts/fuzz.sh only.
"""
import io
import json
import os
import sys
import zipfile

import torch
from safetensors.torch import save

out = sys.argv[1]
os.makedirs(f"{out}/safetensors_header", exist_ok=True)
os.makedirs(f"{out}/torch_pickle", exist_ok=True)
os.makedirs(f"{out}/torch_bin", exist_ok=True)

torch.manual_seed(0)
dicts = {
    "tiny": {"model.embed_tokens.weight": torch.randn(8, 4), "model.norm.weight": torch.ones(4)},
    "dtypes": {f"t.{d}": torch.zeros(3, 2, dtype=getattr(torch, d)) for d in
               ["float64", "float32", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool"]},
    "empty_and_scalar": {"empty": torch.zeros(0, 5), "scalar": torch.tensor(1.5), "one": torch.ones(1)},
}
for name, tensors in dicts.items():
    with open(f"{out}/safetensors_header/{name}.safetensors", "wb") as f:
        f.write(save(tensors, metadata={"format": "pt"}))


def saved(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def pickle_of(zip_bytes):
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as z:
        return z.read(next(n for n in z.namelist() if n.endswith("data.pkl")))


def as_zip64(zip_bytes):
    """The same records, stored, with zip64 extra fields and end records (as files past 4 GiB have)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(zip_bytes)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            with dst.open(info.filename, "w", force_zip64=True) as f:
                f.write(src.read(info))
    return out.getvalue()


linear = torch.nn.Linear(4, 3)
shared = torch.randn(6, 4)
states = {
    "tiny": dicts["tiny"],
    "dtypes": dicts["dtypes"],
    "parameters": linear.state_dict(keep_vars=True),
    "tied": {"model.embed_tokens.weight": shared, "lm_head.weight": shared},
    "views": {"row": shared[2], "column": shared[:, 1], "slice": shared[1:4]},
    "empty_and_scalar": dicts["empty_and_scalar"],
}
for name, state in states.items():
    zip_bytes = saved(state)
    with open(f"{out}/torch_bin/{name}.bin", "wb") as f:
        f.write(zip_bytes)
    with open(f"{out}/torch_pickle/{name}.pkl", "wb") as f:
        f.write(pickle_of(zip_bytes))
with open(f"{out}/torch_bin/zip64.bin", "wb") as f:
    f.write(as_zip64(saved(states["views"])))
os.makedirs(f"{out}/tokenizer_json", exist_ok=True)
for i, path in enumerate(sys.argv[2:]):
    t = json.load(open(path, encoding="utf-8"))
    vocab = {k: v for k, v in t["model"]["vocab"].items() if v < 400}
    merges = []
    for m in t["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(m)
    t["model"]["vocab"], t["model"]["merges"] = vocab, merges
    t["added_tokens"] = t["added_tokens"][:8]
    with open(f"{out}/tokenizer_json/small_{i}.json", "w", encoding="utf-8") as f:
        json.dump(t, f, ensure_ascii=False)
print(f"make_seeds: {len(dicts)} safetensors, {len(states) + 1} torch.save and {len(states)} pickle seeds in {out}")
