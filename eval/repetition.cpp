#include "eval/repetition.h"

#include <cmath>

namespace dsalign {

std::optional<Repetition> find_repetition(const std::vector<int32_t>& t, bool terminated, const RepetitionRule& rule) {
  if (terminated) return std::nullopt;
  const int64_t n = static_cast<int64_t>(t.size());
  const int64_t need_tail = static_cast<int64_t>(std::ceil(rule.min_tail_fraction * static_cast<double>(n)));
  for (int64_t p = 1; p <= rule.max_unit && p * rule.min_repeats <= n; ++p) {
    // Length of the longest suffix with t[i] == t[i - p].
    int64_t matched = 0;
    while (matched < n - p && t[static_cast<size_t>(n - 1 - matched)] == t[static_cast<size_t>(n - 1 - matched - p)]) ++matched;
    const int64_t periodic = matched + p;
    if (periodic >= rule.min_repeats * p && periodic >= need_tail) return Repetition{p, periodic};
  }
  return std::nullopt;
}

}  // namespace dsalign
