"""scripts/gpu_check.sh's report: every figure its benchmarks printed (one JSON object per line)
as one Markdown table and one JSON file, with the ratios against the peers and DESIGN.md's
targets (SFT: >= 60k tokens/s at <= 30 GiB on one H100; DPO: twice the plain transformers step's
speed at half its memory).

    python3 bench/gpu_report.py records.jsonl skipped.txt device.txt report.md report.json
"""
import datetime
import json
import sys

records_path, skipped_path, device_path, md_path, json_path = sys.argv[1:6]
records = [json.loads(line) for line in open(records_path) if line.strip().startswith("{")]
skipped = [line.strip() for line in open(skipped_path) if line.strip()]
device = open(device_path).read().strip()
GiB = 2**30


def find(name):
    return next((r for r in records if r.get("name") == name), None)


def ratio(a, b, key):
    return a[key] / b[key] if a and b and b.get(key) else None


ours_sft = find("dsalign kernels=fused")
ours_ref = find("dsalign kernels=reference")
ours_dpo = find("dsalign dpo reference=live kernels=fused")
ratios = {
    "sft fused / transformers eager, tokens/s": ratio(ours_sft, find("transformers eager"), "tokens_per_s"),
    "sft fused / transformers + torch.compile, tokens/s": ratio(ours_sft, find("transformers compile"), "tokens_per_s"),
    "sft fused / transformers + Liger, tokens/s": ratio(ours_sft, find("transformers liger"), "tokens_per_s"),
    "sft fused / transformers + Liger, peak memory": ratio(ours_sft, find("transformers liger"), "peak_bytes"),
    "sft fused / dsalign reference, tokens/s": ratio(ours_sft, ours_ref, "tokens_per_s"),
    "dpo live / transformers dpo, tokens/s": ratio(ours_dpo, find("transformers dpo (live bf16 reference)"), "tokens_per_s"),
    "dpo live / transformers dpo, peak memory": ratio(ours_dpo, find("transformers dpo (live bf16 reference)"), "peak_bytes"),
}
targets = {
    "sft >= 60k tokens/s": ours_sft is not None and ours_sft["tokens_per_s"] >= 60000,
    "sft <= 30 GiB": ours_sft is not None and ours_sft["peak_bytes"] <= 30 * GiB,
    "dpo >= 2x transformers speed": (ratios["dpo live / transformers dpo, tokens/s"] or 0) >= 2,
    "dpo <= 0.5x transformers memory": (ratios["dpo live / transformers dpo, peak memory"] or 9) <= 0.5,
}

lines = [f"# gpu_check {datetime.date.today().isoformat()}", "", "```", device, "```", "",
         "| what | tokens/s | step s | peak GiB | ms | GB/s |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
fmt = lambda r, k, f: (f.format(r[k]) if k in r else "")
for r in records:
    peak = f"{r['peak_bytes'] / GiB:.2f}" if "peak_bytes" in r else ""
    lines.append(f"| {r['name']} ({r['bench']}) | {fmt(r, 'tokens_per_s', '{:.0f}')} | {fmt(r, 'step_s', '{:.3f}')} | "
                 f"{peak} | {fmt(r, 'ms', '{:.3f}')} | {fmt(r, 'gb_per_s', '{:.0f}')} |")
lines += ["", "| ratio | value |", "| --- | ---: |"]
lines += [f"| {k} | {'' if v is None else f'{v:.2f}'} |" for k, v in ratios.items()]
lines += ["", "| target | met |", "| --- | --- |"] + [f"| {k} | {'yes' if v else 'no'} |" for k, v in targets.items()]
if skipped:
    lines += ["", "Skipped for time:"] + [f"- {s}" for s in skipped]
open(md_path, "w").write("\n".join(lines) + "\n")
json.dump({"date": datetime.date.today().isoformat(), "device": device, "records": records, "ratios": ratios,
           "targets": targets, "skipped": skipped}, open(json_path, "w"), indent=1)
