#include "eval/repetition_eval.h"

#include <algorithm>
#include <chrono>

#include <nlohmann/json.hpp>

#include "model/generate.h"
#include "util/error.h"
#include "util/files.h"
#include "util/progress.h"

namespace dsalign {

namespace {

void check_prompt_lengths(const std::vector<std::vector<int32_t>>& prompt_ids, const std::vector<EvalPrompt>& prompts,
                          int64_t context, const std::filesystem::path& file) {
  for (size_t i = 0; i < prompts.size(); ++i)
    if (static_cast<int64_t>(prompt_ids[i].size()) > context)
      fail(file.string(), ": prompt ", prompts[i].id, " is ", prompt_ids[i].size(),
           " tokens in the chat format, longer than the model's context of ", context, " (max_position_embeddings)");
}

}  // namespace

void check_prompts_fit(const ModelConfig& model, const Tokenizer& tokenizer, ChatFormat format,
                       const std::vector<EvalPrompt>& prompts, const std::filesystem::path& file) {
  std::vector<std::vector<ChatMessage>> conversations;
  for (const EvalPrompt& p : prompts) conversations.push_back(p.messages);
  check_prompt_lengths(chat_prompt_ids(tokenizer, format, conversations), prompts, model.max_position_embeddings, file);
}

RepetitionCases score_repetition(CausalLM& model, const Tokenizer& tokenizer, ChatFormat format,
                                 const std::vector<EvalPrompt>& prompts, const std::vector<int64_t>& order,
                                 const RepetitionEvalConfig& config, const std::string& label) {
  validate(config, "repetition");
  std::vector<std::vector<ChatMessage>> conversations;
  for (const EvalPrompt& p : prompts) conversations.push_back(p.messages);
  std::vector<std::vector<int32_t>> prompt_ids = chat_prompt_ids(tokenizer, format, conversations);
  check_prompt_lengths(prompt_ids, prompts, model->config.max_position_embeddings, config.prompts);
  GenerationOptions g = chat_generation_options(tokenizer, format, config.max_new_tokens, config.batch_size);

  Progress progress("repetition " + label, static_cast<int64_t>(prompts.size()), "prompts");
  std::vector<Generation> responses =
      generate_greedy(model, prompt_ids, g, [&](size_t done, size_t) { progress.update(static_cast<int64_t>(done)); });
  progress.finish();

  RepetitionCases out;
  out.counts.prompts = static_cast<int64_t>(prompts.size());
  for (size_t i = 0; i < prompts.size(); ++i) {
    const Generation& r = responses[i];
    out.counts.terminated += r.terminated;
    auto repetition = find_repetition(r.tokens, r.terminated, config.rule);
    if (!repetition) continue;
    ++out.counts.repetitive;
    if (out.counts.repetitive > config.report_cases) continue;  // no part needs more than that many
    nlohmann::json line = {{"id", prompts[i].id},
                           {"prompt", prompts[i].prompt},
                           {"rule", repetition_kind_name(repetition->kind)},
                           {"unit", tokenizer.decode(repetition->unit)},
                           {"unit_tokens", repetition->unit},
                           {"repeats", repetition->repeats},
                           {"response", tokenizer.decode(r.tokens)}};
    if (repetition->kind == Repetition::Kind::loop) line["coverage"] = repetition->coverage;
    out.cases.emplace_back(order.at(i), line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  }
  return out;
}

RepetitionResult finish_repetition_report(RepetitionResult result, std::vector<std::pair<int64_t, std::string>> cases,
                                          const RepetitionEvalConfig& config, const std::filesystem::path& report,
                                          const std::string& label, double seconds) {
  result.ratio = static_cast<double>(result.repetitive) / static_cast<double>(std::max<int64_t>(result.prompts, 1));
  result.seconds = seconds;
  std::sort(cases.begin(), cases.end());
  std::string lines;
  for (size_t i = 0; i < cases.size() && static_cast<int64_t>(i) < config.report_cases; ++i) lines += cases[i].second + "\n";
  nlohmann::json summary = {{"summary",
                             {{"label", label},
                              {"prompts", result.prompts},
                              {"repetitive", result.repetitive},
                              {"terminated", result.terminated},
                              {"ratio", result.ratio},
                              {"max_new_tokens", config.max_new_tokens},
                              {"rule",
                               {{"max_unit", config.rule.max_unit},
                                {"min_repeats", config.rule.min_repeats},
                                {"min_tail_fraction", config.rule.min_tail_fraction},
                                {"loop_ngram", config.rule.loop_ngram},
                                {"loop_min_count", config.rule.loop_min_count},
                                {"loop_min_coverage", config.rule.loop_min_coverage}}},
                              {"prompts_file", config.prompts.string()},
                              {"seconds", result.seconds}}}};
  if (!report.empty()) {
    if (report.has_parent_path()) std::filesystem::create_directories(report.parent_path());
    write_file_atomic(report, summary.dump() + "\n" + lines);
  }
  return result;
}

RepetitionResult measure_repetition(CausalLM& model, const Tokenizer& tokenizer, ChatFormat format,
                                    const std::vector<EvalPrompt>& prompts, const RepetitionEvalConfig& config,
                                    const std::filesystem::path& report, const std::string& label) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<int64_t> order(prompts.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  RepetitionCases part = score_repetition(model, tokenizer, format, prompts, order, config, label);
  return finish_repetition_report(part.counts, std::move(part.cases), config, report, label,
                                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace dsalign
