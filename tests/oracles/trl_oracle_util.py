"""What the TRL oracles (make_dpo_cases.py, make_sft_cases.py) share: message builders, the
tokenizer folders, a tiny LlamaForCausalLM shaped for a tokenizer, and quiet logging. Test oracle
only; never used by dsalign at run time."""
import os
import warnings

from transformers import LlamaConfig
from transformers.utils import logging as hf_logging

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOK_ROOT = os.path.join(REPO, "assets", "tokenizers")
FORMATS = ("deepseek-llm", "deepseek-coder")  # each with its own tokenizer folder and shipped template


def u(c):
    return {"role": "user", "content": c}


def a(c):
    return {"role": "assistant", "content": c}


def s(c):
    return {"role": "system", "content": c}


def tiny_config(tokenizer):
    """2 layers, hidden 32, GQA 4:2, random init wide enough that log-probs differ visibly."""
    return LlamaConfig(hidden_size=32, intermediate_size=88, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, vocab_size=len(tokenizer), rms_norm_eps=1e-6, rope_theta=10000.0,
                       max_position_embeddings=4096, tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id, initializer_range=0.2)


def quiet():
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TQDM_DISABLE", "1")
