#include "eval/eval_monitor.h"

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "dist/dist.h"
#include "train/recipe_sections.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {

EvalMonitorConfig parse_eval_monitor_config(YamlReader& reader, const std::filesystem::path& base) {
  EvalMonitorConfig c;
  const std::filesystem::path suite = resolve_recipe_path(base, reader.string("suite", std::nullopt));
  c.every_steps = reader.integer("every_steps", 0);
  if (c.every_steps < 0) reader.error("every_steps", "must be 0 (start and end only) or positive, got ", c.every_steps);
  c.at_start = reader.boolean("at_start", true);
  c.at_end = reader.boolean("at_end", true);
  c.limit = reader.integer("limit", 0);
  if (c.limit < 0) reader.error("limit", "must be 0 (all) or positive, got ", c.limit);
  reader.finish();
  try {
    c.suite = read_eval_suite(suite);
  } catch (const Error& e) {
    reader.error("suite", e.what());
  }
  return c;
}

bool eval_due(const EvalMonitorConfig& config, int64_t step, int64_t total_steps) {
  return config.every_steps > 0 && step % config.every_steps == 0 && step < total_steps;
}

void run_eval_monitor(CausalLM& model, const Tokenizer& tokenizer, const EvalMonitorConfig& config, int64_t step,
                      std::optional<MetricsLog>& metrics, const std::filesystem::path& out_dir, const Dist& dist) {
  const bool main_rank = dist.is_main();
  const auto start = std::chrono::steady_clock::now();
  SuiteRunOptions options;
  options.limit = config.limit;
  options.progress = main_rank;
  options.dist = &dist;
  const std::vector<SuiteTaskResult> results = run_eval_suite(model, tokenizer, config.suite, options);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!main_rank) return;
  nlohmann::json record = {{"step", step}};
  std::string report;
  for (const SuiteTaskResult& r : results) {
    for (const auto& [metric, value] : r.metrics) record["eval/" + r.name + "/" + metric] = value;
    report += nlohmann::json({{"step", step}, {"task", r.name}, {"metric", r.metric}, {"value", r.value},
                              {"stderr", r.stderr_}, {"examples", r.examples}, {"metrics", r.metrics}})
                  .dump() +
              "\n";
  }
  record["eval_seconds"] = seconds;
  if (metrics) metrics->write(record);
  std::error_code ec;
  std::filesystem::create_directories(out_dir / "eval", ec);
  if (ec) fail((out_dir / "eval").string(), ": cannot create the directory (", ec.message(), ")");
  write_file_atomic(out_dir / "eval" / ("step_" + std::to_string(step) + ".jsonl"), report);
  std::fprintf(stderr, "step %lld: eval suite %s (%.1f s)\n%s", static_cast<long long>(step), config.suite.name.c_str(),
               seconds, suite_table(results).c_str());
}

}  // namespace dsalign
