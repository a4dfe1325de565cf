#include "util/error.h"

#include <vector>

namespace dsalign {

// LibTorch's c10::Error puts its backtrace after the message's first line.
std::string first_line(const std::exception& e) {
  std::string text = e.what();
  auto newline = text.find('\n');
  return newline == std::string::npos ? text : text.substr(0, newline);
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

}  // namespace dsalign
