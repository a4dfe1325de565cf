#!/usr/bin/env python3
"""Oracle: lm-evaluation-harness (lm_eval, pinned in scripts/requirements-oracles.txt) run offline
on a tiny random LlamaForCausalLM with the deepseek-llm tokenizer, over local data. dsalign's
`eval loglik | mc | bpb` must reproduce its per-request log-likelihoods (within 1e-5, fp32, CPU)
and its metrics (tests/test_eval_parity.cpp).

usage: make_eval_cases.py OUT_DIR

Writes OUT_DIR/model/ (the checkpoint and tokenizer files), OUT_DIR/loglik.jsonl,
OUT_DIR/mc.jsonl, OUT_DIR/docs.jsonl (the inputs, in dsalign's formats), the task YAMLs lm-eval
reads them through, and OUT_DIR/expected.json:
  loglik: [[loglik, is_greedy], ...]        HFLM.loglikelihood on loglik.jsonl's requests
  mc_lls, mc_unconditional_lls              per question and choice, from lm-eval's samples
  mc: {acc, acc_norm, acc_bytes, acc_mutual_info} and their stderrs
  bpb: {bits_per_byte, byte_perplexity, word_perplexity}, bpb_doc_lls per document
  gen: per prompt of GEN_PROMPTS, HFLM.generate_until's text with no stop string (gen_raw), a stop
       string taken from that text and the text generate_until makes with it (gen_stop, gen_cut)
  gsm8k: per crafted response, the strict / flexible answers of gsm8k-cot's and gsm8k's regex
       filters and exact_match_hf_evaluate against its gold (gsm8k-cot's settings)
  math: per crafted response, minerva_math's get_unnormalized_answer, normalize_final_answer and
       last_boxed_only_string + remove_boxed; math_norm: normalize_final_answer of crafted answers
The model's max_position_embeddings is 48, so the documents span several rolling windows.
Test oracle only, never used by dsalign at run time.
"""
import json
import os
import shutil
import sys

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "..", "assets", "tokenizers", "deepseek-llm")
MAX_LENGTH = 48

LOGLIK = [
    {"context": "The capital of France is", "continuation": " Paris"},
    {"context": "The capital of France is ", "continuation": "Paris."},  # trailing space moves over
    {"context": "", "continuation": "Hello world"},  # empty context: BOS
    {"context": "Question: 2 + 2 =", "continuation": " 4"},
    {"context": "def add(a, b):\n    return", "continuation": " a + b\n"},
    {"context": "北京是中国的", "continuation": "首都。"},
    {"context": "A long context " * 12, "continuation": "that is cut from the left."},  # > max length
    {"context": "Tabs\tand\nnewlines  ", "continuation": "\tend"},
]

MC = [
    {"query": "Question: Which is a fruit?\nAnswer:", "choices": ["apple", "chair", "river"], "gold": 0},
    {"query": "The sky on a clear day is", "choices": ["blue", "green", "made of cheese"], "gold": 0},
    {"query": "2 + 3 =", "choices": ["5", "6", "23", "five"], "gold": 0},
    {"query": "中国的首都是", "choices": ["北京", "上海", "广州"], "gold": 0},
    {"query": "Pick the longest word:", "choices": ["a", "antidisestablishmentarianism", "word"], "gold": 1},
    {"query": "Water boils at", "choices": ["100 degrees Celsius", "0 degrees Celsius"], "gold": 0},
    {"query": "Café or tea?", "choices": ["café", "tea", "naïve"], "gold": 2},
    {"query": "for i in range(3):", "choices": ["\n    print(i)", "\nprint(i)"], "gold": 0},
]

DOCS = [
    "The quick brown fox jumps over the lazy dog. " * 6 + "Then it rests.",
    "深度求索的语言模型在中文和英文上都经过训练。它可以回答问题、写代码，也可以翻译。" * 2,
    "def fibonacci(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n\nprint(fibonacci(10))\n",
    "Short one.",
    "  Leading spaces,\u00a0a no-break space and\u3000an ideographic space; words\tcount differently.  ",
]


GEN_PROMPTS = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer:",
    "Question: " + "A farmer counts his cows and his hens. " * 6 + "How many legs?\nAnswer:",  # cut from the left
    "Problem:\nWhat is $2+2$?\n\nSolution:",
    "def add(a, b):\n    \"\"\"Return the sum of a and b.\"\"\"\n",
    "北京是中国的",
]
GEN_TOKENS = 16

GSM8K = [  # (response, gold)
    ("Tom had 3. He buys 4. 3 + 4 = 7. So the answer is 7.", "7"),
    ("The answer is 1,234.", "1234"),
    ("The answer is $18.00 in total.", "18.00"),
    ("So the answer is 18", "18"),  # no character after the number: the pattern's final '.' takes a digit
    ("She makes 9 * 2 = $18 every day.\n#### 18", "18"),
    ("The answer is -5. Then the answer is 6.", "-5"),
    ("I think it is 12, or maybe 13", "13"),
    ("no numbers at all", "0"),
    ("Janet sells 16 - 3 - 4 = 9 duck eggs. She makes $18.", "18"),
    ("THE ANSWER IS 4.", "4"),
    ("The answer is 3.5.", "3.5"),
    ("7", "7"),
]

MATH = [
    "We have $x = 3$.\nFinal Answer: The final answer is $3$. I hope it is correct.",
    "Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.",
    "So $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$.\nFinal Answer: The final answer is $\\left( 3, \\frac{\\pi}{2} \\right)$. I hope it is correct.",
    "The area is $\\boxed{10\\text{ cm}^2}$.",
    "Thus the answer is \\boxed{\\dfrac{3}{4}} and \\boxed{5}.",
    "Final Answer: The final answer is $x = 10,000$ dollars",
    "Final Answer: The final answer is 2\\sqrt[3]{8}. I hope it is correct.",
    "nothing here",
    "\\fbox{42}",
    "The answer is \\boxed 7$ units.",
    "Final Answer: The final answer is $\\text{(B)}$. I hope it is correct.",
]

MATH_ANSWERS = [
    "3", "\\frac{1}{2}", "\\frac12", "\\dfrac{3}{4}", "10,000", "0,1", "1,2,3", "-1,234,567", "x = 5", "5\\text{ cm}",
    "\\left( 3, \\frac{\\pi}{2} \\right)", "2\\pi cm", "90^\\circ", "90^{\\circ}", "\\sqrt2", "\\sqrt{2}",
    "\\sqrt[3]8", "\\sqrt[3]{8}", "\\text{Monday}", "\\textbf{(C)}", "\\overline{12}", "\\boxed{7}",
    "$\\$5.00$", "5 square units", "an apple", "4 ways", "\\mbox{inches}", "3\\;4", "1{,}000",
    "\\$ 12", "12 \\text{ feet}", "\\infty", "[2,5)", "\\{1, 2\\}", "\\text{Sunday and Monday}",
]


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main(out):
    os.makedirs(out, exist_ok=True)
    model_dir = os.path.join(out, "model")
    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), rms_norm_eps=1e-6, rope_theta=10000.0,
                         max_position_embeddings=MAX_LENGTH, tie_word_embeddings=False,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger logits than the default init, so the choices differ clearly
        model.lm_head.weight.mul_(40)
    model.save_pretrained(model_dir, safe_serialization=True)
    for name in os.listdir(TOKENIZER):
        shutil.copy(os.path.join(TOKENIZER, name), model_dir)

    write_jsonl(os.path.join(out, "loglik.jsonl"), LOGLIK)
    write_jsonl(os.path.join(out, "mc.jsonl"), MC)
    write_jsonl(os.path.join(out, "docs.jsonl"), [{"text": t} for t in DOCS])

    tasks_dir = os.path.join(out, "tasks")
    os.makedirs(tasks_dir, exist_ok=True)
    with open(os.path.join(tasks_dir, "dsalign_mc.yaml"), "w") as f:
        f.write(f"""task: dsalign_mc
dataset_path: json
dataset_kwargs:
  data_files:
    test: {os.path.join(out, "mc.jsonl")}
test_split: test
output_type: multiple_choice
doc_to_text: query
doc_to_choice: choices
doc_to_target: gold
metric_list:
  - metric: acc
  - metric: acc_norm
  - metric: acc_bytes
  - metric: acc_mutual_info
""")
    with open(os.path.join(tasks_dir, "dsalign_bpb.yaml"), "w") as f:
        f.write(f"""task: dsalign_bpb
dataset_path: json
dataset_kwargs:
  data_files:
    test: {os.path.join(out, "docs.jsonl")}
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: text
metric_list:
  - metric: word_perplexity
  - metric: byte_perplexity
  - metric: bits_per_byte
""")

    from lm_eval import simple_evaluate
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    lm = HFLM(pretrained=model_dir, device="cpu", dtype="float32", batch_size=3, max_length=MAX_LENGTH)
    requests = [Instance(request_type="loglikelihood", doc={}, arguments=(r["context"], r["continuation"]), idx=i)
                for i, r in enumerate(LOGLIK)]
    expected = {"loglik": [[float(ll), bool(g)] for ll, g in lm.loglikelihood(requests)]}

    manager = TaskManager(include_path=tasks_dir)
    results = simple_evaluate(model=lm, tasks=["dsalign_mc", "dsalign_bpb"], task_manager=manager, log_samples=True,
                              num_fewshot=0, bootstrap_iters=100)
    mc = results["results"]["dsalign_mc"]
    expected["mc"] = {k.split(",")[0]: v for k, v in mc.items() if "," in k}
    samples = sorted(results["samples"]["dsalign_mc"], key=lambda s: s["doc_id"])
    expected["mc_lls"], expected["mc_unconditional_lls"] = [], []
    for s in samples:
        lls = [float(r[0][0]) for r in s["resps"]]
        n = len(s["doc"]["choices"])
        expected["mc_lls"].append(lls[:n])
        expected["mc_unconditional_lls"].append(lls[n:])
    bpb = results["results"]["dsalign_bpb"]
    expected["bpb"] = {k.split(",")[0]: v for k, v in bpb.items() if "," in k and "stderr" not in k}
    samples = sorted(results["samples"]["dsalign_bpb"], key=lambda s: s["doc_id"])
    expected["bpb_doc_lls"] = [float(s["resps"][0][0]) for s in samples]
    expected.update(generation_cases(lm))
    expected.update(answer_cases())
    expected["bos_in_tokenizer_encode"] = tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1, ensure_ascii=False)
    print(json.dumps({"mc": expected["mc"], "bpb": expected["bpb"]}, indent=1))


def generation_cases(lm):
    from lm_eval.api.instance import Instance

    def generate(until_per_prompt):
        requests = [Instance(request_type="generate_until", doc={}, idx=i,
                             arguments=(p, {"until": list(u), "max_gen_toks": GEN_TOKENS, "do_sample": False}))
                    for i, (p, u) in enumerate(zip(GEN_PROMPTS, until_per_prompt))]
        return lm.generate_until(requests)

    raw = generate([[] for _ in GEN_PROMPTS])
    # A stop string the generation does contain: characters 3..5 of its text.
    stops = [r[3:6] if len(r.strip()) >= 8 else "" for r in raw]
    cut = generate([[s] if s else [] for s in stops])
    return {"gen_prompts": GEN_PROMPTS, "gen_tokens": GEN_TOKENS, "gen_raw": raw, "gen_stop": stops, "gen_cut": cut}


def answer_cases():
    import yaml
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter
    from lm_eval.tasks.minerva_math import utils as minerva

    cot_yaml = os.path.join(os.path.dirname(minerva.__file__), "..", "gsm8k", "gsm8k-cot.yaml")
    with open(cot_yaml) as f:
        cot = yaml.safe_load(f.read().replace("!function", ""))
    patterns = {f["name"]: f["filter"][0] for f in cot["filter_list"]}
    assert patterns["strict-match"]["regex_pattern"] == r"The answer is (\-?[0-9\.\,]+).", patterns
    assert patterns["flexible-extract"]["regex_pattern"] == r"(-?[$0-9.,]{2,})|(-?[0-9]+)", patterns
    ignore = cot["metric_list"][0]["regexes_to_ignore"]
    assert ignore == [",", "\\$", "(?s).*#### ", "\\.$"], ignore
    # dsalign's strict answer: gsm8k-cot's strict-match with "the" in either case (OLMES's shots say
    # "So the answer is"), else gsm8k's own strict-match ("#### N").
    cot_strict = RegexFilter(patterns["strict-match"]["regex_pattern"].replace("The", "[Tt]he"))
    hash_strict = RegexFilter(r"#### (\-?[0-9\.\,]+)")
    flexible = RegexFilter(patterns["flexible-extract"]["regex_pattern"], group_select=-1)

    def first(f, r):
        return f.apply([[r]], [{}])[0][0]

    def em(p, g):
        return float(exact_match_hf_evaluate([p], [g], regexes_to_ignore=ignore, ignore_case=True)["exact_match"])

    gsm8k = []
    for response, gold in GSM8K:
        strict = first(cot_strict, response)
        if strict == "[invalid]":
            strict = first(hash_strict, response)
        flex = first(flexible, response)
        gsm8k.append({"response": response, "gold": gold, "strict": strict, "flexible": flex,
                      "em_strict": em(strict, gold), "em_flexible": em(flex, gold)})
    math = []
    for response in MATH:
        boxed = minerva.last_boxed_only_string(response)
        content = minerva.remove_boxed(boxed) if boxed and boxed.startswith("\\boxed") else None
        if boxed and boxed.startswith("\\fbox"):
            content = boxed[len("\\fbox{"):-1]
        final = minerva.get_unnormalized_answer(response)
        math.append({"response": response, "final": final, "final_normalised": minerva.normalize_final_answer(final),
                     "boxed": content})
    norm = [[a, minerva.normalize_final_answer(a)] for a in MATH_ANSWERS]
    return {"gsm8k": gsm8k, "math": math, "math_norm": norm}


if __name__ == "__main__":
    main(sys.argv[1])
