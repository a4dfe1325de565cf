#!/usr/bin/env python3
"""Makes the quickstart's synthetic data (deterministic; the outputs are committed beside this file).

Four kinds of instruction a small model learns in minutes, each with held-out prompts that test
generalisation rather than memorised lines:
  greet / goodbye  "Greet Talima." -> "Hello, Talima!": names of two or three random syllables
                   from a small inventory (8 consonants x 4 vowels), so every held-out name is a
                   new combination of familiar tokens that the model must copy;
  colour / capital "Tell me the colour of a lemon." -> "A lemon is yellow.": each fact is taught
                   in three of four phrasings and asked in the fourth (each phrasing is held out
                   for five of the twenty facts);
  sum              "What is 23 plus 45?" -> "23 plus 45 is 68.": two-digit numbers whose digits
                   add without carrying; the 30 held-out pairs never appear in training;
  code             "Write a Python function named kari that returns 42." ->
                   "def kari():\n    return 42": held-out names and numbers.

data/pretrain.jsonl  {"text"}: running text of prompts and answers, longer than the pretraining
                     recipe's max_seq_len, so like pretraining chunks they rarely end: a base model
                     trained on it answers chat prompts by looping.
data/sft.jsonl       {"prompt", "response", "domain"}: general (greetings, facts), math (sums),
                     code. Stage 2 drops math and code, as the DeepSeek LLM paper did.
data/heldout.jsonl   {"id", "prompt", "answer", "kind"}: the 100 held-out prompts (30 greetings,
                     20 facts, 30 sums, 20 functions), scored by exact match and the repetition
                     ratio (heldout.yaml, dsalign eval gen --task chat).
data/preference.jsonl {"prompt", "chosen", "rejected", "domain"}: general prompts whose chosen
                     answer is right and concise and whose rejected one loops (the answer
                     repeated) or gets the fact or the greeting wrong, for DPO.
Usage: python3 recipes/quickstart/make_data.py   (from anywhere)
"""
import collections
import itertools
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "data")
ROOT = os.path.dirname(os.path.dirname(HERE))
COLOURS = {"apple": "red", "banana": "yellow", "grape": "purple", "lime": "green", "orange": "orange",
           "cherry": "red", "plum": "purple", "lemon": "yellow", "kiwi": "green", "coconut": "brown"}
CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo", "Egypt": "Cairo",
            "Peru": "Lima", "Kenya": "Nairobi", "Chile": "Santiago", "Norway": "Oslo", "Cuba": "Havana"}
COLOUR_ASKS = ["What colour is a {}?", "Which colour does a {} have?", "Tell me the colour of a {}.",
               "Name the colour of a {}."]
CAPITAL_ASKS = ["What is the capital of {}?", "Which city is the capital of {}?", "Tell me the capital of {}.",
                "Name the capital of {}."]
CONSONANTS, VOWELS = "kmrtlnps", "aeio"


def tokens(tokenizer, name):
    return tokenizer.encode(" " + name, add_special_tokens=False).tokens


def name_pools(rng, train_count, heldout_count):
    """Training and held-out names (capitalised; code uses them in lower case).

    A name of random syllables splits into byte-pair pieces that are often rare ("Telipi" ->
    " Tel" "ip" "i"), and a piece seen a handful of times cannot be copied. So names are kept only
    when every piece of both spellings is common among all names, and a held-out name only when
    each of its pieces occurs in at least 15 training names: new combinations of familiar tokens.
    """
    from tokenizers import Tokenizer  # the oracle venv's (scripts/requirements-oracles.txt)
    tokenizer = Tokenizer.from_file(os.path.join(ROOT, "assets", "tokenizers", "deepseek-coder", "tokenizer.json"))
    syllables = [c + v for c in CONSONANTS for v in VOWELS]
    every = ["".join(p).capitalize() for n in (2, 3) for p in itertools.product(syllables, repeat=n)]
    pieces = {name: tokens(tokenizer, name) + tokens(tokenizer, name.lower()) for name in every}
    frequency = collections.Counter(piece for name in every for piece in pieces[name])
    common = sorted(name for name in every if all(frequency[piece] >= 200 for piece in pieces[name]))
    rng.shuffle(common)
    train = common[:train_count]
    in_training = collections.Counter(piece for name in train for piece in set(pieces[name]))
    heldout = [name for name in common[train_count:] if all(in_training[piece] >= 15 for piece in pieces[name])]
    return train, heldout[:heldout_count]


def no_carry_pair(rng):
    while True:
        a, b = rng.randrange(10, 90), rng.randrange(10, 90)
        if a % 10 + b % 10 < 10 and a // 10 + b // 10 < 10:
            return a, b


def greeting(name, kind):
    if kind == "greet":
        return f"Greet {name}.", f"Hello, {name}!"
    return f"Say goodbye to {name}.", f"Goodbye, {name}. See you soon!"


def fact(table, asks, key, phrasing):
    prompt = asks[phrasing].format(key)
    if table is COLOURS:
        return prompt, f"A {key} is {table[key]}."
    return prompt, f"The capital of {key} is {table[key]}."


def sum_pair(a, b):
    return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."


def code(name, n):
    return f"Write a Python function named {name} that returns {n}.", f"def {name}():\n    return {n}"


def main():
    rng = random.Random(2401)
    os.makedirs(OUT, exist_ok=True)
    train_names, heldout_names = name_pools(rng, 4000, 50)
    facts = [(COLOURS, COLOUR_ASKS, k) for k in sorted(COLOURS)] + [(CAPITALS, CAPITAL_ASKS, k) for k in sorted(CAPITALS)]
    # Each fact is held out in one of its four phrasings (each phrasing held out for five facts).
    heldout_phrasing = {(id(t), k): i % 4 for i, (t, _, k) in enumerate(facts)}
    heldout_pairs = set()
    while len(heldout_pairs) < 30:
        heldout_pairs.add(no_carry_pair(rng))

    def general(rng):
        kind = rng.randrange(4)
        if kind < 2:
            return greeting(rng.choice(train_names), "greet" if kind == 0 else "goodbye")
        table, asks, key = rng.choice(facts)
        held = heldout_phrasing[(id(table), key)]
        return fact(table, asks, key, rng.choice([p for p in range(4) if p != held]))

    def math(rng):
        while True:
            a, b = no_carry_pair(rng)
            if (a, b) not in heldout_pairs:
                return sum_pair(a, b)

    def coding(rng):
        return code(rng.choice(train_names).lower(), rng.randrange(100))

    with open(os.path.join(OUT, "pretrain.jsonl"), "w") as f:
        for _ in range(320):
            sentences = []
            for _ in range(rng.randrange(12, 20)):
                pick = rng.randrange(3)
                pair = general(rng) if pick == 0 else math(rng) if pick == 1 else coding(rng)
                sentences.append(pair[0] + " " + pair[1])
            f.write(json.dumps({"text": " ".join(sentences)}) + "\n")
    with open(os.path.join(OUT, "sft.jsonl"), "w") as f:
        for i in range(16000):
            domain = ["general", "general", "math", "code"][i % 4]
            prompt, response = general(rng) if domain == "general" else math(rng) if domain == "math" else coding(rng)
            f.write(json.dumps({"prompt": prompt, "response": response, "domain": domain}) + "\n")
    heldout = []
    for i, name in enumerate(heldout_names[:30]):
        kind = "greet" if i % 2 == 0 else "goodbye"
        heldout.append((kind,) + greeting(name, kind))
    for table, asks, key in facts:
        heldout.append(("colour" if table is COLOURS else "capital",) + fact(table, asks, key, heldout_phrasing[(id(table), key)]))
    for a, b in sorted(heldout_pairs):
        heldout.append(("sum",) + sum_pair(a, b))
    for name in heldout_names[30:50]:
        heldout.append(("code",) + code(name.lower(), rng.randrange(100)))
    rng.shuffle(heldout)
    with open(os.path.join(OUT, "heldout.jsonl"), "w") as f:
        for i, (kind, prompt, answer) in enumerate(heldout):
            f.write(json.dumps({"id": f"heldout/{i}", "prompt": prompt, "answer": answer, "kind": kind}) + "\n")
    # Chosen: the right answer. Rejected, in turn: it looping (repeated until cut off), it wrong
    # (another fact, sum or greeting, a name or number altered), or it cut short.
    with open(os.path.join(OUT, "preference.jsonl"), "w") as f:
        for i in range(720):
            domain = ["general", "general", "math", "code"][i % 4]
            prompt, chosen = general(rng) if domain == "general" else math(rng) if domain == "math" else coding(rng)
            how = (i // 4) % 3
            rejected = (" ".join([chosen] * rng.randrange(3, 6)) if how == 0 else
                        wrong_answer(rng, prompt, chosen) if how == 1 else cut_short(rng, chosen))
            f.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected, "domain": domain}) + "\n")


def other_name(rng, name):
    """The name with one syllable changed, dropped or added."""
    syllables = [name[i:i + 2].lower() for i in range(0, len(name), 2)]
    at = rng.randrange(len(syllables))
    how = rng.randrange(3) if len(syllables) > 2 else rng.choice([0, 2])
    if how == 0:
        syllables[at] = rng.choice([c + v for c in CONSONANTS for v in VOWELS if c + v != syllables[at]])
    elif how == 1:
        del syllables[at]
    else:
        syllables.insert(at, rng.choice(CONSONANTS) + rng.choice(VOWELS))
    out = "".join(syllables)
    return out.capitalize() if name[0].isupper() else out


def wrong_answer(rng, prompt, chosen):
    """The same kind of answer, wrong: another greeting or name, fact, sum or number."""
    if prompt.startswith(("Greet ", "Say goodbye")):
        name = prompt.split()[-1].rstrip(".")
        if rng.randrange(2) == 0:
            return chosen.replace(name, other_name(rng, name))
        if prompt.startswith("Greet "):
            return chosen.replace("Hello,", "Goodbye,")
        return chosen.replace("Goodbye,", "Hello,").replace(" See you soon!", "")
    if prompt.startswith("What is") and "plus" in prompt:
        a, b = (int(w.rstrip("?")) for w in prompt.split() if w.rstrip("?").isdigit())
        return f"{a} plus {b} is {a + b + rng.choice([-11, -10, -1, 1, 10, 11])}."
    if prompt.startswith("Write a Python"):
        name = prompt.split()[5]
        n = int(chosen.split()[-1])
        return code(other_name(rng, name), n)[1] if rng.randrange(2) == 0 else code(name, (n + rng.randrange(1, 100)) % 100)[1]
    table = COLOURS if "colour" in prompt else CAPITALS
    right = [v for k, v in table.items() if k in prompt][0]
    wrong = rng.choice(sorted(set(table.values()) - {right}))
    return chosen.replace(right, wrong)


def cut_short(rng, chosen):
    """The answer stopped early: before its last one to three characters (a digit, a syllable)."""
    return chosen[:len(chosen) - rng.randrange(1, 4)].rstrip()


if __name__ == "__main__":
    main()
