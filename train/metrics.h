// metrics.jsonl: one JSON object per logged step, appended and flushed as it happens, so a run
// that dies keeps every line it logged.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace dsalign {

class MetricsLog {
 public:
  // append=true continues an existing file (resume).
  MetricsLog(const std::filesystem::path& path, bool append);
  void write(const nlohmann::json& record);

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

}  // namespace dsalign
