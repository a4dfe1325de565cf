// lm-evaluation-harness's scoring rules (0.4.x: lm_eval/api/task.py, api/metrics.py, utils.py),
// reproduced so that dsalign's numbers equal its numbers for the same log-likelihoods.
#pragma once
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "eval/eval_data.h"

namespace dsalign {

// Python's len(str): code points of valid UTF-8.
int64_t python_length(std::string_view text);
// len(re.split(r"\s+", text)) with Python's Unicode whitespace (str.isspace): the word count of
// word_perplexity.
int64_t python_word_count(std::string_view text);

// One question's scores from the log-likelihood of each choice (and, for the unconditional score,
// of each choice after the unconditional context). Ties go to the first choice (np.argmax).
//   acc             argmax ll
//   acc_norm        argmax ll / len(choice)            (characters)
//   acc_bytes       argmax ll / len(choice in UTF-8)   (bytes)
//   acc_mutual_info argmax ll - ll_unconditional
struct McScores {
  double acc = 0, acc_norm = 0, acc_bytes = 0;
  std::optional<double> acc_mutual_info;
  int64_t pred = 0, pred_norm = 0;
};
McScores score_question(const McQuestion& q, const std::vector<double>& lls,
                        const std::vector<double>* unconditional_lls = nullptr);

// Mean and standard error of the mean (sample standard deviation / sqrt(n)), lm-eval's
// mean_stderr.
struct MeanStderr {
  double mean = 0, stderr_ = 0;
};
MeanStderr mean_stderr(const std::vector<double>& values);

// Rolling log-likelihood windows (get_rolling_token_windows with context_len 1, then
// make_disjoint_window): every token of `tokens` is predicted exactly once; the first window is
// conditioned on `prefix` (BOS), each later one on the tokens before it, at most max_length
// tokens in, max_length predicted.
struct RollingWindow {
  std::vector<int32_t> context, continuation;
};
std::vector<RollingWindow> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix, int64_t max_length);

// Corpus totals of a perplexity task and its three metrics (lm-eval's aggregations).
struct PerplexityTotals {
  double loglik = 0;
  int64_t bytes = 0, words = 0;
  double bits_per_byte() const;    // -loglik / bytes / ln 2
  double byte_perplexity() const;  // exp(-loglik / bytes)
  double word_perplexity() const;  // exp(-loglik / words)
};

}  // namespace dsalign
