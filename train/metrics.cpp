#include "train/metrics.h"

#include "util/error.h"

namespace dsalign {

MetricsLog::MetricsLog(const std::filesystem::path& path, bool append)
    : path_(path), out_(path, append ? std::ios::app : std::ios::trunc) {
  if (!out_) fail(path.string(), ": cannot open for writing");
}

void MetricsLog::write(const nlohmann::json& record) {
  out_ << record.dump() << "\n";
  out_.flush();
  if (!out_) fail(path_.string(), ": write failed (disk full?)");
}

}  // namespace dsalign
