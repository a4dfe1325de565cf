"""Writes a safetensors file's tensors as a torch.save checkpoint, as transformers' .bin files are.

usage: write_torch_bin.py IN.safetensors OUT.bin [plain | zip64 | deflate]
plain: torch.save as is. zip64: the same records rewritten stored with zip64 extra fields and end
records (as files past 4 GiB have). deflate: the records compressed (torch.save never writes
this; a reader must refuse it rather than read compressed bytes as weights).
"""
import io
import sys
import zipfile

import torch
from safetensors.torch import load_file

source, out = sys.argv[1], sys.argv[2]
mode = sys.argv[3] if len(sys.argv) > 3 else "plain"
buffer = io.BytesIO()
torch.save(load_file(source), buffer)
if mode == "plain":
    data = buffer.getvalue()
else:
    rewritten = io.BytesIO()
    compression = zipfile.ZIP_DEFLATED if mode == "deflate" else zipfile.ZIP_STORED
    with zipfile.ZipFile(buffer) as src, zipfile.ZipFile(rewritten, "w", compression) as dst:
        for info in src.infolist():
            with dst.open(info.filename, "w", force_zip64=(mode == "zip64")) as f:
                f.write(src.read(info))
    data = rewritten.getvalue()
with open(out, "wb") as f:
    f.write(data)
