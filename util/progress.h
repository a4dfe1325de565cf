// A progress display for long work: a live line with rate and ETA on a terminal, plain lines
// (every 10% or 30 s) otherwise, on stderr.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace dsalign {

class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit);
  void update(int64_t done);
  void finish();  // final line with the total time

 private:
  std::string label_, unit_;
  int64_t total_;
  bool terminal_;
  std::chrono::steady_clock::time_point start_, last_print_;
  int last_decile_ = -1;
  bool finished_ = false;
};

}  // namespace dsalign
