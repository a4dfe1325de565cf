#include "report/text_report.h"

#include <algorithm>
#include <cmath>

#include "report/html_report.h"
#include "report/stage_table.h"

namespace dsalign {

std::string sparkline(const std::vector<double>& values, size_t width) {
  static const char* bars[] = {"▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
  std::vector<double> finite;
  for (double v : values)
    if (std::isfinite(v)) finite.push_back(v);
  if (finite.empty() || width == 0) return "";
  // Resample by averaging buckets, so a long run fits the width.
  std::vector<double> shown;
  const size_t n = std::min(width, finite.size());
  for (size_t i = 0; i < n; ++i) {
    const size_t begin = i * finite.size() / n, end = std::max(begin + 1, (i + 1) * finite.size() / n);
    double sum = 0;
    for (size_t j = begin; j < end; ++j) sum += finite[j];
    shown.push_back(sum / static_cast<double>(end - begin));
  }
  const auto [lo, hi] = std::minmax_element(shown.begin(), shown.end());
  std::string out;
  for (double v : shown) {
    const double t = *hi > *lo ? (v - *lo) / (*hi - *lo) : 0.5;
    out += bars[std::clamp(static_cast<int>(std::lround(t * 7)), 0, 7)];
  }
  return out;
}

namespace {

std::string line(const std::string& label, const std::string& value) {
  std::string padded = "  " + label;
  padded.resize(std::max<size_t>(padded.size() + 1, 20), ' ');
  return padded + value + "\n";
}

std::string curve_line(const RunMetrics& run, const std::string& tag) {
  auto it = run.series.find(tag);
  if (it == run.series.end() || it->second.empty()) return "";
  std::vector<double> values;
  for (const SeriesPoint& p : it->second) values.push_back(p.value);
  const SeriesPoint &first = it->second.front(), &last = it->second.back();
  if (it->second.size() == 1) return line(tag, format_number(last.value) + " (step " + std::to_string(last.step) + ")");
  return line(tag, sparkline(values, 40) + "  " + format_number(first.value) + " (step " + std::to_string(first.step) +
                       ") -> " + format_number(last.value) + " (step " + std::to_string(last.step) + ")");
}

std::string run_text(const RunMetrics& run) {
  const RunSummary& s = run.summary;
  std::string out = run.name + "  (" + run.dir.string() + ")\n";
  out += line("model", s.model);
  if (!s.data.empty()) out += line("data", s.data);
  out += line("strategy", s.strategy);
  out += line("steps", std::to_string(s.steps) + (s.tokens ? ", " + std::to_string(*s.tokens) + " tokens" : ""));
  out += line("wall time", s.wall_seconds ? format_seconds(*s.wall_seconds) : "n/a (no times: older metrics)");
  if (s.peak_memory_bytes) out += line("peak memory", format_bytes(*s.peak_memory_bytes));
  if (s.final_loss) out += line("final loss", format_number(*s.final_loss));
  if (s.final_val_loss) out += line("final val loss", format_number(*s.final_val_loss));
  if (s.repetition_ratio)
    out += line("repetition ratio", (s.first_repetition_ratio ? format_number(*s.first_repetition_ratio) + " -> " : "") +
                                        format_number(*s.repetition_ratio));
  if (s.reward_accuracy) out += line("reward accuracy", format_number(*s.reward_accuracy));
  for (const auto& [key, value] : s.eval) out += line("eval " + key, format_number(value));
  for (const std::string& tag : {"train/loss", "val/loss", "repetition/ratio", "dpo/rewards/margin", "val/rewards/accuracy"})
    out += curve_line(run, tag);
  for (const auto& [tag, points] : run.series)
    if (tag.rfind("eval/", 0) == 0 && tag != "eval/seconds" && points.size() > 1) out += curve_line(run, tag);
  for (const std::string& w : run.warnings) out += "  warning: " + w + "\n";
  return out;
}

}  // namespace

std::string text_report(const std::vector<ReportInput>& inputs) {
  std::string out;
  for (const ReportInput& input : inputs) {
    if (input.pipeline) out += "== pipeline " + input.name + ": " + std::to_string(input.runs.size()) + " training stages\n";
    for (const RunMetrics& run : input.runs) out += run_text(run) + "\n";
    if (input.pipeline) {
      const std::string table = stage_table(input);
      if (!table.empty()) out += table + "\n";
    }
  }
  std::vector<const RunMetrics*> runs;
  for (const ReportInput& input : inputs)
    for (const RunMetrics& run : input.runs) runs.push_back(&run);
  if (runs.size() > 1) {
    const std::vector<std::string> keys = differing_keys(runs);
    constexpr size_t kShown = 12;  // the page has them all
    out += "recipe keys that differ between the runs: " + std::to_string(keys.size()) +
           (keys.size() > kShown ? " (the first " + std::to_string(kShown) + "; the HTML report lists all)" : "") + "\n";
    for (const std::string& key : std::vector<std::string>(keys.begin(), keys.begin() + std::min(keys.size(), kShown))) {
      out += "  " + key + ":";
      for (const RunMetrics* r : runs) {
        auto it = r->config.find(key);
        out += "  " + (it == r->config.end() ? std::string("–") : it->second);
      }
      out += "\n";
    }
  }
  return out;
}

}  // namespace dsalign
