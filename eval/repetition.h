// The repetition ratio's detector (DeepSeek LLM paper, section 4: the share of greedy responses
// that fail to terminate and instead repeat a sequence of text endlessly).
//
// A response is repetitive when it did not terminate (it reached max_new_tokens without the
// end-of-turn token) and one of two rules holds:
//  exact  its tail is exactly periodic: for some unit length p <= max_unit, the last L tokens
//         satisfy t[i] == t[i - p], with L >= min_repeats * p (the unit occurs at least
//         min_repeats times in a row) and L >= min_tail_fraction * the response length. The
//         smallest such p is reported. A loop the model escaped (the period broken in the last
//         unit) is not counted.
//  loop   its tail goes round a loop that varies ("2. 2. 2 is 2. 2. 2. 2 is 2. ..."): in the last
//         W = max(loop_window_min, loop_window_fraction * length) tokens, the positions inside an
//         occurrence of some loop_ngram-token n-gram that occurs at least loop_min_count times in
//         those W tokens cover at least loop_min_coverage of them. A substitution or insertion
//         breaks only the n-grams that contain it, so a loop with variations still covers most of
//         its window, while prose and code, whose n-grams rarely recur three times within a few
//         hundred tokens, cover little (the rate on real prose and code is in the README).
// The exact rule is tried first, so its unit and repeat count are reported when it applies.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "util/yaml_reader.h"

namespace dsalign {

struct RepetitionRule {
  int64_t max_unit = 64;            // exact: longest repeating unit, in tokens
  int64_t min_repeats = 3;          // exact: the unit must occur this many times in a row at the end
  double min_tail_fraction = 0.25;  // exact: and the periodic tail must cover this share of the response
  int64_t loop_ngram = 4;               // loop: n-gram length, in tokens
  int64_t loop_min_count = 3;           // loop: occurrences that make an n-gram a repeat
  double loop_min_coverage = 0.9;       // loop: share of the window repeats must cover
  double loop_window_fraction = 0.5;    // loop: the window is this share of the response's end
  int64_t loop_window_min = 64;         // loop: and at least this many tokens (shorter responses: no loop rule)
};

struct Repetition {
  enum class Kind { exact, loop };
  Kind kind = Kind::exact;
  std::vector<int32_t> unit;    // exact: the last p tokens; loop: the most frequent n-gram of the window
  double repeats = 0;           // exact: L / p; loop: that n-gram's occurrences in the window
  int64_t unit_length = 0;      // exact: p
  int64_t periodic_tokens = 0;  // exact: L, the length of the periodic tail; loop: the window W
  double coverage = 1.0;        // loop: the share of the window covered by repeated n-grams (exact: 1)
};
const char* repetition_kind_name(Repetition::Kind kind);

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
  std::string prompt;                 // the last user turn's text (what reports show)
  std::vector<ChatMessage> messages;  // the conversation to answer, ending with a user turn
};
// One {"prompt": str} or {"messages": [{"role", "content"}, ...]} (ending with a user turn, as the
// data files write conversations) per line, optional "id". Errors name file:line (bad JSON, no
// prompt, a conversation that does not end with a user turn, an empty file).
std::vector<EvalPrompt> read_eval_prompts(const std::filesystem::path& path, int64_t max_prompts);

}  // namespace dsalign
