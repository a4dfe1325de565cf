// The log-likelihood primitive every scored evaluation uses, with lm-evaluation-harness's rules
// (lm_eval/api/model.py, models/huggingface.py) so its numbers and dsalign's are the same:
//   - trailing whitespace of the context moves to the front of the continuation;
//   - context + continuation is encoded as one string and split at the length of the encoded
//     context (a token that straddles the boundary belongs to the continuation's side as the
//     whole encoding has it);
//   - an empty context becomes the prefix token (BOS, else EOS), and the continuation is
//     encoded alone (if it begins with the prefix token, that token is the context instead);
//   - the model reads (context + continuation)[-(max_length + 1):][:-1] and the continuation's
//     log-probs are summed; is_greedy says every continuation token was the argmax (a shared
//     context is read once for all its continuations: the same numbers, less work).
// Text is encoded without special tokens, as transformers 5 encodes these tokenizers for lm-eval.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "data/tokenizer.h"
#include "eval/eval_data.h"
#include "model/decoder.h"

namespace dsalign {

struct TokenizedRequest {
  std::vector<int32_t> context, continuation;
};

struct LoglikResult {
  double loglik = 0;
  bool is_greedy = false;
  int64_t tokens = 0;  // continuation tokens scored
};

// The prefix token lm-eval uses for empty contexts: BOS, else EOS.
int32_t prefix_token(const Tokenizer& tokenizer);

TokenizedRequest tokenize_request(const Tokenizer& tokenizer, const LoglikRequest& request);

// Scores every request (no gradients); results in input order. Requests that share a context of
// at least `min_shared_context` tokens (the choices of a few-shot question) and fit the model
// whole are one row: the context is run once, each continuation after it sees only the context
// and itself (an attention mask), with positions as if it were alone. Shorter contexts are cheaper
// to repeat: the explicit mask takes attention off its causal fast path (on a tiny model with
// 48-token contexts, sharing from 16 tokens made `eval mc` 1.6x slower). Rows go in batches of up
// to `batch_size`, longest first; logits are computed only where a continuation token is
// predicted. `on_progress(done)` after each batch.
std::vector<LoglikResult> score_requests(CausalLM& model, const std::vector<TokenizedRequest>& requests,
                                         int64_t max_length, int64_t batch_size,
                                         const std::function<void(int64_t)>& on_progress = {},
                                         int64_t min_shared_context = 256);

}  // namespace dsalign
