// One error type for everything a user can cause: bad files, bad configs, bad arguments.
// Its message is a single line that names the file / key / tensor and what was expected;
// the CLI prints it as is and exits non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace dsalign {

struct Error : std::runtime_error {
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

// fail("file ", path, ": expected ", n, " bytes") throws Error with the pieces concatenated.
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  throw Error(out.str());
}

// The first line of a c10::Error or other exception, without LibTorch's backtrace.
std::string first_line(const std::exception& e);

// "[2, 3, 4]" for shape messages.
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace dsalign
