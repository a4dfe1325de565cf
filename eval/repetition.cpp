#include "eval/repetition.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <fstream>

#include <nlohmann/json.hpp>

#include "eval/eval_data.h"
#include "util/error.h"

namespace dsalign {

namespace {

std::optional<Repetition> exact_repetition(const std::vector<int32_t>& t, const RepetitionRule& rule) {
  const int64_t n = static_cast<int64_t>(t.size());
  const int64_t need_tail = static_cast<int64_t>(std::ceil(rule.min_tail_fraction * static_cast<double>(n)));
  for (int64_t p = 1; p <= rule.max_unit && p * rule.min_repeats <= n; ++p) {
    // Length of the longest suffix with t[i] == t[i - p].
    int64_t matched = 0;
    while (matched < n - p && t[static_cast<size_t>(n - 1 - matched)] == t[static_cast<size_t>(n - 1 - matched - p)]) ++matched;
    const int64_t periodic = matched + p;
    if (periodic >= rule.min_repeats * p && periodic >= need_tail) {
      Repetition r;
      r.kind = Repetition::Kind::exact;
      r.unit.assign(t.end() - p, t.end());
      r.unit_length = p;
      r.periodic_tokens = periodic;
      r.repeats = static_cast<double>(periodic) / static_cast<double>(p);
      return r;
    }
  }
  return std::nullopt;
}

std::optional<Repetition> loop_repetition(const std::vector<int32_t>& t, const RepetitionRule& rule) {
  const int64_t n = static_cast<int64_t>(t.size()), g = rule.loop_ngram;
  const int64_t w = std::max(rule.loop_window_min,
                             static_cast<int64_t>(std::ceil(rule.loop_window_fraction * static_cast<double>(n))));
  if (n < w || w < g) return std::nullopt;
  const auto begin = t.end() - w;
  auto ngram = [&](int64_t i) { return std::vector<int32_t>(begin + i, begin + i + g); };
  std::map<std::vector<int32_t>, int64_t> counts;
  for (int64_t i = 0; i + g <= w; ++i) ++counts[ngram(i)];
  std::vector<bool> covered(static_cast<size_t>(w), false);
  for (int64_t i = 0; i + g <= w; ++i)
    if (counts[ngram(i)] >= rule.loop_min_count) std::fill(covered.begin() + i, covered.begin() + i + g, true);
  const double coverage = static_cast<double>(std::count(covered.begin(), covered.end(), true)) / static_cast<double>(w);
  if (coverage < rule.loop_min_coverage) return std::nullopt;
  auto top = std::max_element(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  Repetition r;
  r.kind = Repetition::Kind::loop;
  r.unit = top->first;
  r.repeats = static_cast<double>(top->second);
  r.periodic_tokens = w;
  r.coverage = coverage;
  return r;
}

}  // namespace

const char* repetition_kind_name(Repetition::Kind kind) { return kind == Repetition::Kind::exact ? "exact" : "loop"; }

std::optional<Repetition> find_repetition(const std::vector<int32_t>& t, bool terminated, const RepetitionRule& rule) {
  if (terminated) return std::nullopt;
  if (auto exact = exact_repetition(t, rule)) return exact;
  return loop_repetition(t, rule);
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
  c.rule.loop_ngram = r.integer("loop_ngram", c.rule.loop_ngram);
  c.rule.loop_min_count = r.integer("loop_min_count", c.rule.loop_min_count);
  c.rule.loop_min_coverage = r.number("loop_min_coverage", c.rule.loop_min_coverage);
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
  at_least("loop_ngram", c.rule.loop_ngram, 1);
  at_least("loop_min_count", c.rule.loop_min_count, 2);
  if (!(c.rule.loop_min_coverage > 0 && c.rule.loop_min_coverage <= 1))
    fail(where, ".loop_min_coverage: must be in (0, 1], got ", c.rule.loop_min_coverage);
}

std::vector<EvalPrompt> read_eval_prompts(const std::filesystem::path& path, int64_t max_prompts) {
  std::vector<EvalPrompt> out;
  for_each_jsonl_object(path, max_prompts, [&](const nlohmann::json& j, const std::string& where) {
    EvalPrompt p;
    p.id = j.contains("id") && j["id"].is_string() ? j["id"].get<std::string>() : where.substr(where.rfind(':') + 1);
    if (j.contains("messages")) {
      if (!j["messages"].is_array() || j["messages"].empty()) fail(where, ": \"messages\" must be a non-empty array");
      for (const auto& m : j["messages"]) {
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
            !m["content"].is_string())
          fail(where, ": each message needs string \"role\" and \"content\"");
        const std::string role = m["role"].get<std::string>();
        if (role != "system" && role != "user" && role != "assistant")
          fail(where, ": message role '", role, "' is not system, user or assistant");
        p.messages.push_back({role, m["content"].get<std::string>()});
      }
      if (p.messages.back().role != "user") fail(where, ": the conversation must end with a user turn (the one to answer)");
      p.prompt = p.messages.back().content;
    } else {
      if (!j.contains("prompt") || !j["prompt"].is_string() || j["prompt"].get<std::string>().empty())
        fail(where, ": expected a non-empty \"prompt\" string or a \"messages\" array");
      p.prompt = j["prompt"].get<std::string>();
      p.messages = {{"user", p.prompt}};
    }
    out.push_back(std::move(p));
  });
  if (out.empty()) fail(path.string(), ": no prompts");
  return out;
}

}  // namespace dsalign
