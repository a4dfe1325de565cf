// Learning-rate schedules, as pure functions of the step: DeepSeek LLM's multi-step schedule
// (linear warmup, then the peak until 80% of the steps, x0.316 until 90%, x0.1 after; milestones
// and factors configurable), cosine with warmup and a floor, and constant with warmup.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "util/yaml_reader.h"

namespace dsalign {

struct ScheduleConfig {
  enum class Kind { multistep, cosine, constant } kind = Kind::multistep;
  double lr = 1e-5;               // peak
  int64_t warmup_steps = 0;       // linear from lr / warmup_steps at step 1 to lr at warmup_steps
  std::vector<double> milestones = {0.8, 0.9};  // multistep: fractions of the total steps
  std::vector<double> factors = {0.316, 0.1};   // multistep: lr multiplier from each milestone on
  double min_lr_ratio = 0.0;      // cosine: floor as a fraction of lr
};

// Reads schedule keys from the `train` section (lr, schedule, warmup_steps, milestones, factors,
// min_lr_ratio).
ScheduleConfig parse_schedule(YamlReader& train);

// The learning rate of optimizer step `step` (1-based) out of `total_steps`.
double learning_rate(const ScheduleConfig& config, int64_t step, int64_t total_steps);

}  // namespace dsalign
