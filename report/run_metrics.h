// What `dsalign report` reads of a run directory: metrics.jsonl (every readable line; a torn or
// malformed line is skipped with a warning naming it), config.yaml flattened to key -> value,
// and a summary. A pipeline's directory is read as its training stages in order.
#pragma once
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dsalign {

struct SeriesPoint {
  int64_t step = 0;
  double value = 0;
};

struct RunSummary {
  std::string model, data, strategy = "none";
  int64_t steps = 0;
  std::optional<int64_t> tokens;
  std::optional<double> wall_seconds;  // first to last record; none for metrics without times
  std::optional<double> peak_memory_bytes;
  std::optional<double> final_loss, final_val_loss;
  std::optional<double> first_repetition_ratio, repetition_ratio;
  std::optional<double> reward_accuracy;  // held-out when validated, else the last step's
  std::map<std::string, double> eval;     // eval/<task>/<metric>: the last value
  // The model before the run's first step, where a monitor measured it at step 0 (at_start).
  std::map<std::string, double> eval_at_start;
  std::optional<double> repetition_ratio_at_start;
};

struct RunMetrics {
  std::string name;  // "quickstart/sft_stage1" for a pipeline stage, else the directory's name
  std::filesystem::path dir;
  std::vector<nlohmann::json> records;
  std::map<std::string, std::vector<SeriesPoint>> series;  // by TensorBoard tag (train/metric_tags)
  std::map<std::string, std::string> config;               // config.yaml as "a.b.c" -> value
  std::optional<double> started;  // Unix seconds: when config.yaml was written
  std::vector<std::string> warnings;
  RunSummary summary;
};

// One command-line argument: a run, or a pipeline's stages in order.
struct ReportInput {
  std::string name;
  std::filesystem::path dir;
  bool pipeline = false;
  std::vector<RunMetrics> runs;
};

// Errors name the argument: not there, not a directory, no metrics.jsonl in it or its stages.
ReportInput read_report_input(const std::filesystem::path& dir);

// A run directory's metrics.jsonl, config.yaml and summary; `name` labels it.
RunMetrics read_run(const std::filesystem::path& dir, const std::string& name);

// config.yaml's keys flattened ("train.lr", "data.sources[0].path"); a file that does not parse
// gives {} and a warning.
std::map<std::string, std::string> flatten_config(const std::filesystem::path& file, std::vector<std::string>& warnings);

// The keys whose values differ between the runs (a key missing from a run counts as differing).
std::vector<std::string> differing_keys(const std::vector<const RunMetrics*>& runs);

}  // namespace dsalign
