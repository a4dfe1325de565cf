#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace dsalign {

Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total), terminal_(::isatty(STDERR_FILENO)),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

void Progress::update(int64_t done) {
  auto now = std::chrono::steady_clock::now();
  double elapsed = std::chrono::duration<double>(now - start_).count();
  double rate = elapsed > 0 ? static_cast<double>(done) / elapsed : 0;
  double eta = rate > 0 ? static_cast<double>(total_ - done) / rate : 0;
  if (terminal_) {
    if (std::chrono::duration<double>(now - last_print_).count() < 0.2 && done < total_) return;
    std::fprintf(stderr, "\r%s: %lld/%lld %s (%.0f/s, ETA %.0fs)   ", label_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total_), unit_.c_str(), rate, eta);
    std::fflush(stderr);
  } else {
    int decile = total_ > 0 ? static_cast<int>(10 * done / total_) : 10;
    if (decile == last_decile_ && std::chrono::duration<double>(now - last_print_).count() < 30) return;
    last_decile_ = decile;
    std::fprintf(stderr, "%s: %lld/%lld %s (%.0f/s, ETA %.0fs)\n", label_.c_str(), static_cast<long long>(done),
                 static_cast<long long>(total_), unit_.c_str(), rate, eta);
  }
  last_print_ = now;
}

void Progress::finish() {
  if (finished_) return;
  finished_ = true;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  std::fprintf(stderr, "%s%s: %lld %s in %.1fs\n", terminal_ ? "\r" : "", label_.c_str(), static_cast<long long>(total_),
               unit_.c_str(), elapsed);
}

}  // namespace dsalign
