// What the training-step benchmarks share: waiting for the device, timing steps after a warm-up
// with the peak-memory counter reset, and a main() that turns errors into one line.
#pragma once
#include <chrono>
#include <functional>
#include <iostream>

#include <torch/torch.h>

#include "train/device_memory.h"
#include "util/error.h"

namespace dsalign::bench {

inline void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
}

// Seconds for `steps` calls of `step`, after `warmup` untimed ones; peak memory counts from the
// first timed step.
inline double time_steps(const std::function<void()>& step, int64_t warmup, int64_t steps, const torch::Device& device) {
  for (int64_t i = 0; i < warmup; ++i) step();
  synchronize(device);
  reset_peak_memory(device);
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < steps; ++i) step();
  synchronize(device);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

inline int guarded_main(const char* name, const std::function<int()>& run) {
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << first_line(e) << "\n";
    return 1;
  }
}

}  // namespace dsalign::bench
