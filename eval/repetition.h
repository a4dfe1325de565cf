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
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "util/yaml_reader.h"

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

// How the repetition ratio is measured: the recipe's `monitor.repetition` section, and the
// options of `dsalign eval repetition`.
struct RepetitionEvalConfig {
  std::filesystem::path prompts;  // JSONL, one {"prompt": ...} per line (optional "id")
  int64_t max_new_tokens = 512;
  int64_t batch_size = 16;
  int64_t max_prompts = 0;   // 0 = all
  int64_t report_cases = 10;  // repetitive responses written out in full
  RepetitionRule rule;
  // As a training monitor:
  int64_t every_steps = 0;  // 0 = only at the start/end
  bool at_start = false;    // measure the starting model too (step 0)
  bool at_end = true;       // measure the model each stage ends with
};

// `monitor.repetition`; relative prompt paths resolve against `base`.
RepetitionEvalConfig parse_repetition_eval_config(YamlReader& reader, const std::filesystem::path& base);
void validate(const RepetitionEvalConfig& config, const std::string& where);

struct EvalPrompt {
  std::string id;
  std::string prompt;
};
// Errors name file:line (bad JSON, no "prompt" string, an empty file).
std::vector<EvalPrompt> read_eval_prompts(const std::filesystem::path& path, int64_t max_prompts);

}  // namespace dsalign
