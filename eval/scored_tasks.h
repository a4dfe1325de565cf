// Multiple choice and bits per byte on top of score_requests, as lm-evaluation-harness runs them
// (multiple_choice and loglikelihood_rolling output types).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/eval_metrics.h"
#include "eval/loglik.h"

namespace dsalign {

struct ScoringOptions {
  int64_t max_length = 0;  // tokens the model reads (0: the model's max_position_embeddings)
  int64_t batch_size = 16;
  bool progress = true;     // a progress line on stderr
  // Choices whose shared context has at least this many tokens are scored in one row (0: never;
  // score_requests).
  int64_t min_shared_context = 16;
};

// score_requests with `options` and, if asked, a progress line labelled `label`.
std::vector<LoglikResult> score_with_progress(CausalLM& model, const std::vector<TokenizedRequest>& requests,
                                              const ScoringOptions& options, const std::string& label);

struct McResult {
  std::vector<double> lls, unconditional_lls;  // per choice (unconditional: when asked)
  McScores scores;
};
struct McReport {
  std::vector<McResult> questions;
  MeanStderr acc, acc_norm, acc_bytes, acc_mutual_info;
  bool unconditional = false;
};
// Each choice is scored as (query, delimiter + choice), or (contexts[c], continuation) for a
// partially scored question (WinoGrande); with `unconditional`, also as
// (unconditional context, delimiter + choice), where the context is the question's own or "".
McReport run_multiple_choice(CausalLM& model, const Tokenizer& tokenizer, const std::vector<McQuestion>& questions,
                             bool unconditional, const ScoringOptions& options);

struct BpbDocument {
  double loglik = 0;
  int64_t bytes = 0, words = 0, tokens = 0, windows = 0;
};
struct BpbReport {
  std::vector<BpbDocument> documents;
  PerplexityTotals totals;
};
// Each document encoded whole, split into rolling windows of the model's length (the first
// conditioned on the prefix token), every token predicted once.
BpbReport run_bits_per_byte(CausalLM& model, const Tokenizer& tokenizer, const std::vector<std::string>& documents,
                            const ScoringOptions& options);

// The model length score_requests uses for `options`.
int64_t scoring_length(const CausalLM& model, const ScoringOptions& options);

}  // namespace dsalign
