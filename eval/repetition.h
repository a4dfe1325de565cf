// The repetition ratio's detector (DeepSeek LLM paper, section 4: the share of greedy responses
// that fail to terminate and instead repeat a sequence of text endlessly).
//
// Rule: a response is repetitive when it did not terminate (it reached max_new_tokens without the
// end-of-turn token) and its tail is exactly periodic: for some unit length p <= max_unit, the
// last L tokens satisfy t[i] == t[i - p], with L >= min_repeats * p (the unit occurs at least
// min_repeats times in a row) and L >= min_tail_fraction * the response length. The smallest
// such p is reported. A loop the model escaped (the period broken in the last unit) is not counted.
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

namespace dsalign {

struct RepetitionRule {
  int64_t max_unit = 64;            // longest repeating unit, in tokens
  int64_t min_repeats = 3;          // the unit must occur this many times in a row at the end
  double min_tail_fraction = 0.25;  // and the periodic tail must cover this share of the response
};

struct Repetition {
  int64_t unit_length = 0;      // p
  int64_t periodic_tokens = 0;  // L: the length of the periodic tail
};

std::optional<Repetition> find_repetition(const std::vector<int32_t>& response, bool terminated,
                                          const RepetitionRule& rule = {});

}  // namespace dsalign
