#include "train/schedule.h"

#include <cmath>

#include "util/error.h"

namespace dsalign {

ScheduleConfig parse_schedule(YamlReader& r) {
  ScheduleConfig c;
  std::string kind = r.choice("schedule", {"multistep", "cosine", "constant"}, "multistep");
  c.kind = kind == "multistep" ? ScheduleConfig::Kind::multistep
           : kind == "cosine"  ? ScheduleConfig::Kind::cosine
                               : ScheduleConfig::Kind::constant;
  c.lr = r.number("lr", std::nullopt);
  if (!(c.lr > 0)) r.error("lr", "must be positive, got ", c.lr);
  c.warmup_steps = r.integer("warmup_steps", 0);
  if (c.warmup_steps < 0) r.error("warmup_steps", "must be >= 0");
  auto numbers = [&](const char* key, std::vector<double> fallback) {
    if (!r.has(key)) {
      r.strings(key);  // marks the key as known
      return fallback;
    }
    std::vector<double> out;
    for (const auto& s : r.strings(key)) {
      try {
        size_t used = 0;
        out.push_back(std::stod(s, &used));
        if (used != s.size()) throw std::invalid_argument(s);
      } catch (const std::exception&) {
        r.error(key, "expected a list of numbers, got '", s, "'");
      }
    }
    return out;
  };
  c.milestones = numbers("milestones", c.milestones);
  c.factors = numbers("factors", c.factors);
  if (c.milestones.size() != c.factors.size()) r.error("factors", "needs one factor per milestone");
  for (size_t i = 0; i < c.milestones.size(); ++i)
    if (c.milestones[i] <= 0 || c.milestones[i] > 1 || (i && c.milestones[i] <= c.milestones[i - 1]))
      r.error("milestones", "must be increasing fractions in (0, 1]");
  c.min_lr_ratio = r.number("min_lr_ratio", 0.0);
  if (c.min_lr_ratio < 0 || c.min_lr_ratio > 1) r.error("min_lr_ratio", "must be in [0, 1]");
  return c;
}

double learning_rate(const ScheduleConfig& c, int64_t step, int64_t total_steps) {
  if (c.warmup_steps > 0 && step <= c.warmup_steps)
    return c.lr * static_cast<double>(step) / static_cast<double>(c.warmup_steps);
  switch (c.kind) {
    case ScheduleConfig::Kind::constant:
      return c.lr;
    case ScheduleConfig::Kind::multistep: {
      double factor = 1.0;
      for (size_t i = 0; i < c.milestones.size(); ++i)
        if (static_cast<double>(step) > c.milestones[i] * static_cast<double>(total_steps)) factor = c.factors[i];
      return c.lr * factor;
    }
    case ScheduleConfig::Kind::cosine: {
      double span = static_cast<double>(std::max<int64_t>(1, total_steps - c.warmup_steps));
      double progress = std::min(1.0, static_cast<double>(step - c.warmup_steps) / span);
      double floor = c.lr * c.min_lr_ratio;
      return floor + (c.lr - floor) * 0.5 * (1.0 + std::cos(M_PI * progress));
    }
  }
  return c.lr;
}

}  // namespace dsalign
