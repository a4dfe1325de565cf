#!/usr/bin/env python3
"""Makes the quickstart's synthetic data (deterministic; the outputs are committed beside this file).

data/pretrain.jsonl  {"text"}: plain-text documents longer than the pretraining recipe's
                     max_seq_len (truncated, so like pretraining chunks they rarely end), to give
                     the tiny base model a little "pretraining": an undertrained base model
                     answers chat prompts by looping instead of ending its turn.
data/sft.jsonl       {"prompt", "response", "domain"}: instructions in three domains a tiny model
                     can learn: general (greetings, colours, capitals), math (sums), code (tiny
                     Python functions). Stage 2 drops math and code, as the DeepSeek LLM paper did.
data/heldout_prompts.jsonl {"id", "prompt"}: prompts with names and values absent from sft.jsonl,
                     for the repetition ratio.
data/preference.jsonl {"prompt", "chosen", "rejected", "domain"}: general-domain prompts whose chosen
                     response is the right, concise answer and whose rejected one either loops
                     (the answer repeated until it is cut off) or gets a fact wrong, for DPO.
Usage: python3 recipes/quickstart/make_data.py   (from the repository root)
"""
import json
import os
import random

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TRAIN_NAMES = ["Alice", "Bob", "Carol", "Dan", "Eve", "Faith", "Grace", "Hank", "Iris", "Jack", "Kate", "Liam",
               "Mona", "Nick", "Olga", "Paul", "Quinn", "Rosa", "Sam", "Tina", "Uma", "Vic", "Wes", "Zoe"]
HELDOUT_NAMES = ["Erin", "Frank", "Heidi", "Ivan", "Judy", "Mallory", "Oscar", "Peggy", "Rupert", "Sybil",
                 "Trent", "Victor", "Walter", "Xena", "Yara", "Zack"]
COLOURS = {"apple": "red", "banana": "yellow", "grape": "purple", "lime": "green", "orange": "orange",
           "cherry": "red", "plum": "purple", "lemon": "yellow", "kiwi": "green", "coconut": "brown"}
CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo", "Egypt": "Cairo",
            "Peru": "Lima", "Kenya": "Nairobi", "Chile": "Santiago", "Norway": "Oslo", "Cuba": "Havana"}


def general(rng, names):
    kind = rng.randrange(4)
    name = rng.choice(names)
    if kind == 0:
        return f"Greet {name}.", f"Hello, {name}!"
    if kind == 1:
        return f"Say goodbye to {name}.", f"Goodbye, {name}. See you soon!"
    if kind == 2:
        fruit = rng.choice(sorted(COLOURS))
        return f"What colour is a {fruit}?", f"A {fruit} is {COLOURS[fruit]}."
    country = rng.choice(sorted(CAPITALS))
    return f"What is the capital of {country}?", f"The capital of {country} is {CAPITALS[country]}."


def math(rng, lo, hi):
    a, b = rng.randrange(lo, hi), rng.randrange(lo, hi)
    return f"What is {a} plus {b}?", f"{a} plus {b} is {a + b}."


def code(rng, names):
    name, n = rng.choice(names).lower(), rng.randrange(100)
    return f"Write a Python function named {name} that returns {n}.", f"def {name}():\n    return {n}"


def main():
    rng = random.Random(2401)
    os.makedirs(HERE, exist_ok=True)
    with open(os.path.join(HERE, "pretrain.jsonl"), "w") as f:
        for _ in range(320):
            sentences = []
            for _ in range(rng.randrange(30, 50)):
                pick = rng.randrange(3)
                pair = general(rng, TRAIN_NAMES) if pick == 0 else math(rng, 0, 50) if pick == 1 else code(rng, TRAIN_NAMES)
                sentences.append(pair[1])
            f.write(json.dumps({"text": " ".join(sentences)}) + "\n")
    with open(os.path.join(HERE, "sft.jsonl"), "w") as f:
        for i in range(1200):
            domain = ["general", "general", "math", "code"][i % 4]
            prompt, response = (general(rng, TRAIN_NAMES) if domain == "general" else
                                math(rng, 0, 50) if domain == "math" else code(rng, TRAIN_NAMES))
            f.write(json.dumps({"prompt": prompt, "response": response, "domain": domain}) + "\n")
    with open(os.path.join(HERE, "heldout_prompts.jsonl"), "w") as f:
        for i in range(32):
            if i % 4 == 3:
                prompt = math(rng, 50, 99)[0]
            else:
                prompt = general(rng, HELDOUT_NAMES)[0]
            f.write(json.dumps({"id": f"heldout/{i}", "prompt": prompt}) + "\n")
    with open(os.path.join(HERE, "preference.jsonl"), "w") as f:
        for i in range(480):
            prompt, chosen = general(rng, TRAIN_NAMES + HELDOUT_NAMES)
            if i % 2 == 0:
                rejected = " ".join([chosen] * rng.randrange(3, 6))
            else:
                rejected = wrong_answer(rng, prompt, chosen)
            f.write(json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected, "domain": "general"}) + "\n")


def wrong_answer(rng, prompt, chosen):
    """The same kind of answer with a wrong fact or the wrong greeting."""
    if prompt.startswith("Greet "):
        return chosen.replace("Hello,", "Goodbye,")
    if prompt.startswith("Say goodbye"):
        return chosen.replace("Goodbye,", "Hello,").replace(" See you soon!", "")
    table = COLOURS if "colour" in prompt else CAPITALS
    right = [v for k, v in table.items() if k in prompt][0]
    wrong = rng.choice(sorted(set(table.values()) - {right}))
    return chosen.replace(right, wrong)


if __name__ == "__main__":
    main()
