#include "util/error.h"

#include <c10/util/Exception.h>

#include <vector>

namespace dsalign {

std::string first_line(const std::exception& e) {
  std::string text;
  if (auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
    text = c10_error->what_without_backtrace();
  } else {
    text = e.what();
  }
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
