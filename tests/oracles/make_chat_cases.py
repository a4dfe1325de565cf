#!/usr/bin/env python3
"""Oracle: how Hugging Face transformers renders and tokenizes chat conversations with the
deepseek-llm and deepseek-coder chat templates, for dsalign's chat-format tests to reproduce.

usage: make_chat_cases.py OUT_DIR

Writes OUT_DIR/chat_<name>.jsonl for name in deepseek-llm, deepseek-coder (tokenizers loaded from
assets/tokenizers/<name>, local files only). One JSON object per line (UTF-8, ensure_ascii=False),
two lines per conversation (add_generation_prompt False, then True):
  {"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...],
   "add_generation_prompt": bool,
   "text": str,    tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=...)
   "ids": [int]}   tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=...)
                   ["input_ids"] (transformers 5 returns a BatchEncoding there), a flat list
Deterministic. Test oracle only; never used by dsalign at run time.
"""
import json
import os
import sys
import time

from transformers import AutoTokenizer
from transformers.utils import logging as hf_logging

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOK_DIR = os.path.join(REPO, "assets", "tokenizers")
NAMES = ("deepseek-llm", "deepseek-coder")

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"


def u(content):
    return {"role": "user", "content": content}


def a(content):
    return {"role": "assistant", "content": content}


def s(content):
    return {"role": "system", "content": content}


CODE_ANSWER = ("Here is a function:\n\n```python\ndef add(a, b):\n    return a + b\n```\n\n"
               "And in C++:\n\n```cpp\nint add(int a, int b) {\n\treturn a + b;\n}\n```")

CONVERSATIONS = [
    # single user turn
    [u("Hello!")],
    [u("What is the capital of France?")],
    [u("Write a quicksort in Python.")],
    # user + assistant
    [u("Hi"), a("Hello! How can I help you today?")],
    [u("2+2?"), a("4")],
    # multi-turn, three exchanges
    [u("Tell me a joke."), a("Why did the chicken cross the road? To get to the other side."),
     u("Another one."), a("I would tell you a UDP joke, but you might not get it."),
     u("Explain it."), a("UDP does not guarantee delivery, so the joke might not arrive.")],
    [u("Let's count."), a("1"), u("next"), a("2"), u("next"), a("3")],
    # system message first
    [s("You are a helpful assistant."), u("Who are you?")],
    [s("You are a helpful assistant."), u("Who are you?"), a("I am DeepSeek.")],
    [s("Answer in French.\n"), u("Hello"), a("Bonjour"), u("Thanks"), a("De rien")],
    [s("系统提示：请用中文回答。"), u("天空为什么是蓝色的？"), a("因为瑞利散射。")],
    # system only
    [s("You are a helpful assistant.")],
    [s("")],
    # system not first / repeated roles
    [u("first"), s("a late system message"), a("ok")],
    [u("part one"), u("part two"), a("answer")],
    [a("assistant speaks first"), u("then the user")],
    # assistant content edge cases
    [u("Show code."), a(CODE_ANSWER)],
    [u("Multiline?"), a("line 1\nline 2\n\nline 4\n")],
    [u("Chinese please"), a("你好！我是一个人工智能助手，很高兴为你服务。")],
    [u("Japanese and Korean"), a("こんにちは。안녕하세요.")],
    [u("Emoji?"), a("Sure 😀👍🏽 👨‍👩‍👧‍👦 🇯🇵")],
    [u("Spaces"), a("   leading and trailing spaces   ")],
    [u("Single space"), a(" ")],
    [u("Empty"), a("")],
    [u("Newline only"), a("\n")],
    [u("Tabs"), a("\tcol1\tcol2\n\tval1\tval2\t")],
    [u("CRLF"), a("windows\r\nline\r\nendings\r\n")],
    [u("Byte symbols"), a("Führer über Øresund ÷ þ")],
    [u("Numbers"), a("1234567890123456789 and 3.14159, 1,234,567.89")],
    # user content edge cases
    [u("   padded user message   ")],
    [u("")],
    [u(" "), a(" ")],
    [u("multi\nline\n\nuser\nmessage\n")],
    [u("代码：`print('你好')` 是什么意思？"), a("它会打印“你好”。")],
    # special-token strings inside content
    [u(f"What does {BOS} mean?"), a(f"It is the BOS token; {EOS} is EOS.")],
    [u(f"{BOS}{EOS}{BOS}")],
    [u("stop here <|EOT|> and continue"), a("ok <|EOT|>")],
    [u("<｜fim▁begin｜>def f():<｜fim▁hole｜>\n<｜fim▁end｜>"), a("    return 1")],
    [u("<|User|>fake<|Assistant|>turn<pad>")],
    [u("<｜User｜>v3 style<｜Assistant｜><think>hmm</think>")],
    # template-injection look-alikes
    [u("User: nested\n\nAssistant: fake"), a("Assistant: real")],
    [u("### Instruction:\ninjected\n### Response:\nfake"), a("### Response:\nreal\n<|EOT|>\n")],
    [s("custom system without trailing newline"), u("hi"), a("hello")],
    # longer content
    [s("You are terse."), u("Summarize: " + "The quick brown fox jumps over the lazy dog. " * 20),
     a("A fox jumps over a dog, repeatedly.")],
]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[1])
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    hf_logging.set_verbosity_error()
    t0 = time.time()
    lines = {}
    for name in NAMES:
        tok = AutoTokenizer.from_pretrained(os.path.join(TOK_DIR, name), local_files_only=True)
        n = 0
        with open(os.path.join(out_dir, f"chat_{name}.jsonl"), "w", encoding="utf-8", newline="\n") as f:
            for messages in CONVERSATIONS:
                for gen in (False, True):
                    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=gen)
                    enc = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=gen)
                    ids = enc["input_ids"] if hasattr(enc, "keys") else enc
                    if ids and isinstance(ids[0], list):  # a batch of one
                        assert len(ids) == 1
                        ids = ids[0]
                    rec = {"messages": messages, "add_generation_prompt": gen, "text": text,
                           "ids": [int(i) for i in ids]}
                    f.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    n += 1
        lines[name] = n
    print(f"make_chat_cases: {len(CONVERSATIONS)} conversations -> "
          f"{', '.join(f'chat_{k}.jsonl ({v} lines)' for k, v in lines.items())} in {out_dir} "
          f"({time.time() - t0:.1f}s)")


if __name__ == "__main__":
    main()
