// The repetition ratio of a model (DeepSeek LLM paper, section 4): render each held-out prompt as
// one user turn in the chat format, generate greedily until the end-of-turn token or
// max_new_tokens, and count the responses find_repetition() calls repetitive.
#pragma once
#include <filesystem>
#include <vector>

#include "data/chat_template.h"
#include "eval/repetition.h"
#include "model/decoder.h"

namespace dsalign {

struct RepetitionResult {
  int64_t prompts = 0;
  int64_t terminated = 0;  // ended with the end-of-turn token
  int64_t repetitive = 0;  // did not terminate and ended periodic
  double ratio = 0;        // repetitive / prompts
  double seconds = 0;
};

// Writes `report` (JSONL, atomically): first a summary line {"summary": {...}}, then for up to
// config.report_cases repetitive responses {"id", "prompt", "unit", "unit_tokens", "repeats",
// "response"}. `label` names the run in progress messages ("step 200"). Only the generation
// options of `config` are used (not its monitor schedule).
RepetitionResult measure_repetition(CausalLM& model, const Tokenizer& tokenizer, ChatFormat format,
                                    const std::vector<EvalPrompt>& prompts, const RepetitionEvalConfig& config,
                                    const std::filesystem::path& report, const std::string& label);

// The two halves of measure_repetition, so ranks can split the prompts: score some prompts
// (counts, and one JSONL case line per repetitive response, each with the prompt's index in
// `order`), then write the report from every part's sums and cases.
struct RepetitionCases {
  RepetitionResult counts;                          // prompts, terminated, repetitive
  std::vector<std::pair<int64_t, std::string>> cases;  // (order, JSONL line)
};
// Every prompt, rendered in the chat format, within the model's context
// (max_position_embeddings); an Error names the prompts file and the prompt's id. Training runs
// check before their first step, not when the monitor first runs.
void check_prompts_fit(const ModelConfig& model, const Tokenizer& tokenizer, ChatFormat format,
                       const std::vector<EvalPrompt>& prompts, const std::filesystem::path& file);
RepetitionCases score_repetition(CausalLM& model, const Tokenizer& tokenizer, ChatFormat format,
                                 const std::vector<EvalPrompt>& prompts, const std::vector<int64_t>& order,
                                 const RepetitionEvalConfig& config, const std::string& label);
// Sorts the cases by order, keeps config.report_cases of them, writes `report` (if not empty);
// `counts` are the sums over every part. Returns the result with its ratio.
RepetitionResult finish_repetition_report(RepetitionResult counts, std::vector<std::pair<int64_t, std::string>> cases,
                                          const RepetitionEvalConfig& config, const std::filesystem::path& report,
                                          const std::string& label, double seconds);

}  // namespace dsalign
