#!/usr/bin/env python3
"""Oracle: what TensorBoard itself reads from a log directory.

usage: read_tensorboard.py LOGDIR OUT.json
Loads LOGDIR with tensorboard's EventAccumulator (no size limits) and writes
{"scalars": [[tag, step, value], ...], "texts": {tag: [[step, text], ...]}}. Test oracle only.
"""
import json
import sys

from tensorboard.backend.event_processing import event_accumulator as ea


def main():
    logdir, out = sys.argv[1:3]
    acc = ea.EventAccumulator(logdir, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
    acc.Reload()
    tags = acc.Tags()
    scalars = [[tag, e.step, e.value] for tag in tags["scalars"] for e in acc.Scalars(tag)]
    texts = {}
    for tag in tags["tensors"]:
        for e in acc.Tensors(tag):
            if e.tensor_proto.string_val:
                texts.setdefault(tag, []).append([e.step, e.tensor_proto.string_val[0].decode("utf-8")])
    with open(out, "w") as f:
        json.dump({"scalars": scalars, "texts": texts}, f)
    print(f"read_tensorboard: {len(scalars)} scalars, {sum(len(v) for v in texts.values())} texts from {logdir}")


if __name__ == "__main__":
    main()
