#include "train/metric_tags.h"

#include <cmath>
#include <map>

namespace dsalign {

namespace {

bool starts_with(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

std::string metric_tag(const std::string& key) {
  static const std::map<std::string, std::string> exact = {
      {"loss", "train/loss"},
      {"lr", "train/lr"},
      {"grad_norm", "train/grad_norm"},
      {"epoch", "train/epoch"},
      {"tokens_seen", "train/tokens_seen"},
      {"skipped_steps", "train/skipped_steps"},
      {"tokens_per_s", "perf/tokens_per_s"},
      {"mfu", "perf/mfu"},
      {"peak_memory_bytes", "memory/peak_bytes"},
      {"peak_memory_bytes_per_rank", "memory/peak_bytes"},
      {"held_weight_bytes", "memory/held_weight_bytes"},
      {"held_gradient_bytes", "memory/held_gradient_bytes"},
      {"held_optimizer_bytes", "memory/held_optimizer_bytes"},
      {"world_size", "dist/world_size"},
      {"reduced_bytes", "dist/reduced_bytes"},
      {"gathered_bytes", "dist/gathered_bytes"},
      {"gathered_peak_bytes", "dist/gathered_peak_bytes"},
      {"gathered_after_step_bytes", "dist/gathered_after_step_bytes"},
      {"pairs", "dpo/pairs"},
      {"beta", "dpo/beta"},
      {"reference_bytes", "dpo/reference_bytes"},
      {"reference_resident", "dpo/reference_resident"},
      {"train_pairs", "dpo/train_pairs"},
      {"validation_pairs", "dpo/validation_pairs"},
      {"eval_seconds", "eval/seconds"},
  };
  if (auto it = exact.find(key); it != exact.end()) return it->second;
  if (starts_with(key, "val_")) return "val/" + key.substr(4);                     // val_loss, val_rewards/margin
  if (starts_with(key, "rewards/") || starts_with(key, "logps/")) return "dpo/" + key;
  if (starts_with(key, "repetition_")) return "repetition/" + key.substr(11);      // repetition_ratio
  return key;                                                                       // eval/<task>/<metric>
}

std::vector<std::pair<std::string, double>> metric_scalars(const nlohmann::json& record) {
  std::vector<std::pair<std::string, double>> out;
  if (!record.is_object()) return out;
  for (const auto& [key, value] : record.items()) {
    if (key == "step" || key == "time") continue;
    // Non-finite numbers are null in metrics.jsonl (JSON has no NaN): not scalars either.
    if (value.is_boolean()) {
      out.emplace_back(metric_tag(key), value.get<bool>() ? 1.0 : 0.0);
    } else if (value.is_number() && std::isfinite(value.get<double>())) {
      out.emplace_back(metric_tag(key), value.get<double>());
    } else if (value.is_array()) {
      for (size_t i = 0; i < value.size(); ++i)
        if (value[i].is_number() && std::isfinite(value[i].get<double>()))
          out.emplace_back(metric_tag(key) + "/rank_" + std::to_string(i), value[i].get<double>());
    }
  }
  return out;
}

}  // namespace dsalign
