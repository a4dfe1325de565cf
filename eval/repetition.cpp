#include "eval/repetition.h"

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "util/error.h"

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


RepetitionEvalConfig parse_repetition_eval_config(YamlReader& r, const std::filesystem::path& base) {
  RepetitionEvalConfig c;
  std::filesystem::path prompts(r.string("prompts", std::nullopt));
  c.prompts = prompts.is_relative() ? (base / prompts).lexically_normal() : prompts;
  c.max_new_tokens = r.integer("max_new_tokens", c.max_new_tokens);
  c.batch_size = r.integer("batch_size", c.batch_size);
  c.max_prompts = r.integer("max_prompts", c.max_prompts);
  c.report_cases = r.integer("report_cases", c.report_cases);
  c.rule.max_unit = r.integer("max_unit", c.rule.max_unit);
  c.rule.min_repeats = r.integer("min_repeats", c.rule.min_repeats);
  c.rule.min_tail_fraction = r.number("min_tail_fraction", c.rule.min_tail_fraction);
  c.every_steps = r.integer("every_steps", c.every_steps);
  c.at_start = r.boolean("at_start", c.at_start);
  c.at_end = r.boolean("at_end", c.at_end);
  r.finish();
  validate(c, r.file() + ": " + r.path());
  return c;
}

void validate(const RepetitionEvalConfig& c, const std::string& where) {
  auto at_least = [&](const char* key, int64_t v, int64_t min) {
    if (v < min) fail(where, ".", key, ": must be at least ", min, ", got ", v);
  };
  at_least("max_new_tokens", c.max_new_tokens, 1);
  at_least("batch_size", c.batch_size, 1);
  at_least("max_prompts", c.max_prompts, 0);
  at_least("report_cases", c.report_cases, 0);
  at_least("max_unit", c.rule.max_unit, 1);
  at_least("min_repeats", c.rule.min_repeats, 2);
  at_least("every_steps", c.every_steps, 0);
  if (!(c.rule.min_tail_fraction >= 0 && c.rule.min_tail_fraction <= 1))
    fail(where, ".min_tail_fraction: must be in [0, 1], got ", c.rule.min_tail_fraction);
}

std::vector<EvalPrompt> read_eval_prompts(const std::filesystem::path& path, int64_t max_prompts) {
  std::ifstream in(path);
  if (!in) fail(path.string(), ": cannot open the prompts file");
  std::vector<EvalPrompt> out;
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = path.string() + ":" + std::to_string(line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail(where, ": not valid JSON (", first_line(e), ")");
    }
    if (!j.is_object() || !j.contains("prompt") || !j["prompt"].is_string() || j["prompt"].get<std::string>().empty())
      fail(where, ": expected an object with a non-empty \"prompt\" string");
    EvalPrompt p;
    p.prompt = j["prompt"].get<std::string>();
    p.id = j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : std::to_string(line_no);
    out.push_back(std::move(p));
    if (max_prompts > 0 && static_cast<int64_t>(out.size()) == max_prompts) break;
  }
  if (out.empty()) fail(path.string(), ": no prompts");
  return out;
}

}  // namespace dsalign
