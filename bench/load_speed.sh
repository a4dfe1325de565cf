#!/usr/bin/env bash
# Checkpoint loading and saving, dsalign beside transformers on the same files in the same run
# (issue 17). Makes a random bf16 checkpoint of a preset with `dsalign init` (kept in WORK between
# calls), then, for RUNS rounds, loads it into bf16 or fp32 parameters:
#   warm (the files read once first): dsalign pread with the default threads, with 1 thread,
#   without the huge-page hint, the earlier copy from a memory map, and transformers'
#   from_pretrained (its own time, then the time until every byte of the model has been read);
#   cold, where /proc/sys/vm/drop_caches can be written (the page cache dropped before each): the
#   same, and dd's sequential read of the files (the disk's bandwidth);
#   saving: `dsalign export` (load + write bf16 safetensors) beside from_pretrained +
#   save_pretrained and safetensors' save_file, whole processes.
# Prints each measurement as JSON, then medians, GiB/s of file bytes and ratios.
# With bf16 parameters also dsalign's mapped load (WeightReadOptions::map_same_dtype), then until
# every byte is read, like transformers.
#   bench/load_speed.sh [preset=deepseek-coder-1.3b] [dtype=bf16] [runs=3] [work=/tmp/dsalign_load_bench] [save=yes|no]
set -euo pipefail
source "$(dirname "$0")/../scripts/env.sh"
preset=${1:-deepseek-coder-1.3b} dtype=${2:-bf16} runs=${3:-3} work=${4:-/tmp/dsalign_load_bench} save=${5:-yes}
py="$DSALIGN_VENV/bin/python"
bench="$DSALIGN_BUILD/dsalign_bench_load"
model="$work/$preset"
mkdir -p "$work"
if [[ ! -f "$model/config.json" ]]; then
  "$DSALIGN_BUILD/dsalign" init "$preset" "$model" --dtype bf16 --seed 0 > /dev/null
  tokenizer=deepseek-llm
  [[ $preset == deepseek-coder* ]] && tokenizer=deepseek-coder
  cp "$DSALIGN_ROOT/assets/tokenizers/$tokenizer"/* "$model/"  # dsalign export writes a chat checkpoint
fi
export TQDM_DISABLE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
results="$work/results.jsonl"
: > "$results"
can_drop=false
if { sync && echo 3 > /proc/sys/vm/drop_caches; } 2> /dev/null; then can_drop=true; fi
warm() { cat "$model"/*.safetensors > /dev/null; }
cold() { sync; echo 3 > /proc/sys/vm/drop_caches; }
# Runs one measurement (a whole process) and appends its JSON line, labelled.
measure() {
  local label=$1 cache=$2; shift 2
  if [[ $cache == warm ]]; then warm; else cold; fi
  "$@" | "$py" -c 'import json,sys; l=json.loads(sys.stdin.read().strip().splitlines()[-1]); l["label"]=sys.argv[1]; l["cache"]=sys.argv[2]; print(json.dumps(l))' "$label" "$cache" >> "$results"
}
caches=(warm)
if $can_drop; then caches+=(cold); fi
for ((r = 0; r < runs; r++)); do
  for cache in "${caches[@]}"; do
    measure "dsalign pread" "$cache" "$bench" --model "$model" --dtype "$dtype"
    measure "dsalign pread, 1 thread" "$cache" "$bench" --model "$model" --dtype "$dtype" --threads 1
    measure "dsalign pread, no huge pages" "$cache" "$bench" --model "$model" --dtype "$dtype" --no-huge-pages
    measure "dsalign mmap copy (before)" "$cache" "$bench" --model "$model" --dtype "$dtype" --method mmap
    [[ $dtype == bf16 ]] && measure "dsalign mapped (models not trained)" "$cache" "$bench" --model "$model" --dtype "$dtype" --map
    measure "transformers from_pretrained" "$cache" "$py" "$DSALIGN_ROOT/bench/peer_load.py" "$model" "$dtype"
  done
  if $can_drop; then
    cold
    start=$(date +%s%N)
    for f in "$model"/*.safetensors; do dd if="$f" of=/dev/null bs=16M status=none; done
    echo "{\"label\": \"dd sequential read\", \"cache\": \"cold\", \"seconds\": $(( ($(date +%s%N) - start) / 1000000 ))e-3}" >> "$results"
  fi
  # Saving: whole processes, warm cache.
  [[ $save == yes ]] || continue
  rm -rf "$work/export" "$work/peer_save"
  mkdir -p "$work/peer_save"
  warm
  start=$(date +%s%N)
  "$DSALIGN_BUILD/dsalign" export "$model" "$work/export" --dtype bf16 > /dev/null
  echo "{\"label\": \"dsalign export (load + save bf16)\", \"cache\": \"warm\", \"seconds\": $(( ($(date +%s%N) - start) / 1000000 ))e-3}" >> "$results"
  warm
  start=$(date +%s%N)
  "$py" "$DSALIGN_ROOT/bench/peer_load.py" "$model" bf16 --save "$work/peer_save" > "$work/peer_save.json"
  whole=$(( ($(date +%s%N) - start) / 1000000 ))
  "$py" -c 'import json,sys; l=json.load(open(sys.argv[1])); print(json.dumps({"label": "transformers from_pretrained + save_pretrained", "cache": "warm", "seconds": float(sys.argv[2]) / 1000, "save_pretrained_s": l["save_pretrained_s"], "save_file_s": l["save_file_s"]}))' "$work/peer_save.json" "$whole" >> "$results"
done
rm -rf "$work/export" "$work/peer_save"
"$py" - "$results" "$preset" "$dtype" "$model" <<'PY'
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
preset, dtype, model = sys.argv[2:5]
file_bytes = sum(os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors"))
print(f"\n{preset}, {file_bytes / 2**30:.2f} GiB of bf16 safetensors, into {dtype} parameters; medians of {len([r for r in rows if r['label'] == 'dsalign pread' and r['cache'] == 'warm'])} runs")
print("| what | cache | seconds | GiB/s | sys s | page faults | peak RSS GiB |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
groups = {}
for r in rows:
    groups.setdefault((r["label"], r["cache"]), []).append(r)
med = lambda rs, k: statistics.median(r[k] for r in rs) if all(k in r for r in rs) else None
for (label, cache), rs in groups.items():
    s = med(rs, "seconds")
    cells = [label, cache, f"{s:.2f}", f"{file_bytes / s / 2**30:.2f}" if "save" not in label and "export" not in label else "–"]
    for k, f in (("sys_s", "{:.2f}"), ("minor_faults", "{:.0f}"), ("max_rss_bytes", None)):
        v = med(rs, k)
        cells.append("–" if v is None else (f"{v / 2**30:.2f}" if f is None else f.format(v)))
    print("| " + " | ".join(cells) + " |")
    if (label.startswith("transformers from_pretrained") or "mapped" in label) and "all_bytes_read_s" in rs[0]:
        print(f"|   ... until every byte read | {cache} | {med(rs, 'all_bytes_read_s'):.2f} | {file_bytes / med(rs, 'all_bytes_read_s') / 2**30:.2f} | | | |")
    if "save_pretrained_s" in rs[0]:
        print(f"|   ... of which save_pretrained | warm | {med(rs, 'save_pretrained_s'):.2f} | | | | |")
        print(f"|   safetensors save_file (same process) | warm | {med(rs, 'save_file_s'):.2f} | | | | |")
for cache in ("warm", "cold"):
    ours, peer = groups.get(("dsalign pread", cache)), groups.get(("transformers from_pretrained", cache))
    if ours and peer:
        print(f"{cache}: transformers from_pretrained / dsalign pread = {med(peer, 'seconds') / med(ours, 'seconds'):.2f}x; "
              f"until every byte read: {med(peer, 'all_bytes_read_s') / med(ours, 'seconds'):.2f}x")
    mapped = groups.get(("dsalign mapped (models not trained)", cache))
    if mapped and peer:
        print(f"{cache}: until every byte read, transformers / dsalign mapped = {med(peer, 'all_bytes_read_s') / med(mapped, 'all_bytes_read_s'):.2f}x")
dd = groups.get(("dd sequential read", "cold"))
ours = groups.get(("dsalign pread", "cold"))
if dd and ours:
    print(f"cold: dsalign pread reads at {med(dd, 'seconds') / med(ours, 'seconds') * 100:.0f}% of dd's sequential bandwidth")
PY
