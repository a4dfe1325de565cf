// metrics.jsonl: one JSON object per logged record, appended and flushed as it happens, so a run
// that dies keeps every line it logged; each carries "time" (Unix seconds). With TensorBoard on,
// the same scalars go to <run>/tensorboard/ under their stable tags (train/metric_tags).
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include "train/tensorboard_writer.h"

namespace dsalign {

class MetricsLog {
 public:
  // <run_dir>/metrics.jsonl and, with `tensorboard`, <run_dir>/tensorboard/; append=true
  // continues both (resume).
  MetricsLog(const std::filesystem::path& run_dir, bool append, bool tensorboard);
  void write(nlohmann::json record);
  // Text at `step` for TensorBoard's text plugin (not in metrics.jsonl); nothing without TensorBoard.
  void write_text(int64_t step, const std::string& tag, const std::string& text);

 private:
  std::filesystem::path path_;
  std::ofstream out_;
  std::optional<TensorBoardWriter> tensorboard_;
};

// A resolved recipe as Markdown for the text plugin: a code block keeps its layout.
std::string recipe_markdown(const std::string& yaml);

}  // namespace dsalign
