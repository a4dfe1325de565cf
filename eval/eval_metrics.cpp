#include "eval/eval_metrics.h"

#include <algorithm>
#include <cmath>

#include "data/utf8.h"
#include "util/error.h"

namespace dsalign {
namespace {

// str.isspace() in Python 3: bidirectional type WS, B or S, or category Zs.
bool python_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f || c == 0x205f || c == 0x3000;
}

// First index of the largest value (np.argmax).
int64_t argmax(const std::vector<double>& v) {
  return static_cast<int64_t>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace

int64_t python_length(std::string_view text) {
  int64_t n = 0;
  for (size_t i = 0; i < text.size();) {
    utf8::next(text, i);
    ++n;
  }
  return n;
}

int64_t python_word_count(std::string_view text) {
  // re.split gives one more piece than there are whitespace runs.
  int64_t runs = 0;
  bool in_run = false;
  for (size_t i = 0; i < text.size();) {
    const bool space = python_isspace(utf8::next(text, i));
    if (space && !in_run) ++runs;
    in_run = space;
  }
  return runs + 1;
}

McScores score_question(const McQuestion& q, const std::vector<double>& lls, const std::vector<double>* unconditional) {
  const size_t n = q.choices.size();
  if (lls.size() != n || (unconditional && unconditional->size() != n))
    fail("score_question: ", lls.size(), " log-likelihoods for ", n, " choices");
  std::vector<double> by_chars(n), by_bytes(n);
  for (size_t i = 0; i < n; ++i) {
    by_chars[i] = lls[i] / static_cast<double>(python_length(q.choices[i]));
    by_bytes[i] = lls[i] / static_cast<double>(q.choices[i].size());
  }
  McScores s;
  s.pred = argmax(lls);
  s.pred_norm = argmax(by_chars);
  s.acc = s.pred == q.gold;
  s.acc_norm = s.pred_norm == q.gold;
  s.acc_bytes = argmax(by_bytes) == q.gold;
  if (unconditional) {
    std::vector<double> mutual(n);
    for (size_t i = 0; i < n; ++i) mutual[i] = lls[i] - (*unconditional)[i];
    s.acc_mutual_info = argmax(mutual) == q.gold ? 1.0 : 0.0;
  }
  return s;
}

MeanStderr mean_stderr(const std::vector<double>& values) {
  MeanStderr out;
  const double n = static_cast<double>(values.size());
  if (values.empty()) return out;
  for (double v : values) out.mean += v;
  out.mean /= n;
  if (values.size() < 2) return out;
  double squares = 0;
  for (double v : values) squares += (v - out.mean) * (v - out.mean);
  out.stderr_ = std::sqrt(squares / (n - 1)) / std::sqrt(n);
  return out;
}

std::vector<RollingWindow> rolling_windows(const std::vector<int32_t>& tokens, int32_t prefix, int64_t max_length) {
  std::vector<RollingWindow> out;
  if (tokens.empty()) return out;
  if (max_length < 1) fail("rolling windows: max_length must be at least 1");
  const auto len = static_cast<int64_t>(tokens.size());
  auto slice = [&](int64_t begin, int64_t end) {
    return std::vector<int32_t>(tokens.begin() + begin, tokens.begin() + end);
  };
  // The first window: [prefix] + the first tokens, predicting them all.
  const int64_t first = std::min(max_length, len);
  RollingWindow w;
  w.context = {prefix};
  w.continuation = slice(0, first);
  out.push_back(std::move(w));
  for (int64_t predicted = first; predicted < len;) {
    const int64_t n = std::min(len - predicted, max_length), end = predicted + n;
    // Disjoint: the context is what precedes the predictions in a window of max_length inputs.
    RollingWindow next;
    next.context = slice(end - max_length - 1, end - n);
    next.continuation = slice(end - n, end);
    out.push_back(std::move(next));
    predicted = end;
  }
  return out;
}

double PerplexityTotals::bits_per_byte() const { return -loglik / static_cast<double>(bytes) / std::log(2.0); }
double PerplexityTotals::byte_perplexity() const { return std::exp(-loglik / static_cast<double>(bytes)); }
double PerplexityTotals::word_perplexity() const { return std::exp(-loglik / static_cast<double>(words)); }

}  // namespace dsalign
