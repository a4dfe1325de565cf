// `monitor.eval` in SFT and DPO recipes: an evaluation suite run on the model being trained, at
// the start, every N steps and at the end; each run adds one metrics.jsonl record
// {"step", "eval/<task>/<metric>": value, ..., "eval_seconds"} and writes eval/step_<N>.jsonl.
//
//   monitor:
//     eval: {suite: ../eval/quick.yaml, every_steps: 100, at_start: true, at_end: true, limit: 0}
//
// With several ranks each rank takes every world_size-th example of each task (sharded units
// gather in lockstep: a rank with fewer batches runs fillers), the results are gathered, and
// rank 0 writes them.
#pragma once
#include <filesystem>
#include <optional>

#include "data/tokenizer.h"
#include "eval/eval_suite.h"
#include "model/decoder.h"
#include "train/metrics.h"
#include "util/yaml_reader.h"

namespace dsalign {

class Dist;

struct EvalMonitorConfig {
  EvalSuite suite;
  int64_t every_steps = 0;  // 0: only at the start / end
  bool at_start = true;
  bool at_end = true;
  int64_t limit = 0;  // > 0: at most this many examples per task
};

// Relative suite paths resolve against `base` (the recipe's folder); the suite is read and
// checked now, so a bad suite stops the run before training.
EvalMonitorConfig parse_eval_monitor_config(YamlReader& reader, const std::filesystem::path& base);

// Whether the monitor runs after `step` of `total_steps` (the end is at_end's).
bool eval_due(const EvalMonitorConfig& config, int64_t step, int64_t total_steps);

// Runs the suite over the ranks of `dist` and, on the main rank, logs it to `metrics` (if any) and
// writes `out_dir`/eval/step_<step>.jsonl.
void run_eval_monitor(CausalLM& model, const Tokenizer& tokenizer, const EvalMonitorConfig& config, int64_t step,
                      std::optional<MetricsLog>& metrics, const std::filesystem::path& out_dir, const Dist& dist);

}  // namespace dsalign
