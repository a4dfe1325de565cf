#include "train/metrics.h"

#include <chrono>
#include <cmath>
#include <sstream>

#include "train/metric_tags.h"
#include "util/error.h"

namespace dsalign {

namespace {

double unix_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

MetricsLog::MetricsLog(const std::filesystem::path& run_dir, bool append, bool tensorboard)
    : path_(run_dir / "metrics.jsonl"), out_(path_, append ? std::ios::app : std::ios::trunc) {
  if (!out_) fail(path_.string(), ": cannot open for writing");
  if (tensorboard) tensorboard_.emplace(run_dir / "tensorboard", append);
}

void MetricsLog::write(nlohmann::json record) {
  const double now = unix_seconds();
  if (!record.contains("time")) record["time"] = std::round(now * 1000) / 1000;
  out_ << record.dump() << "\n";
  out_.flush();
  if (!out_) fail(path_.string(), ": write failed (disk full?)");
  const double wall_time = record["time"].is_number() ? record["time"].get<double>() : now;
  if (tensorboard_) tensorboard_->add_scalars(record.value("step", int64_t{0}), wall_time, metric_scalars(record));
}

void MetricsLog::write_text(int64_t step, const std::string& tag, const std::string& text) {
  if (tensorboard_) tensorboard_->add_text(step, unix_seconds(), tag, text);
}

std::string recipe_markdown(const std::string& yaml) {
  std::string out;
  std::istringstream in(yaml);
  for (std::string line; std::getline(in, line);) out += "    " + line + "\n";
  return out;
}

}  // namespace dsalign
