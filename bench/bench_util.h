// What the training-step benchmarks share: waiting for the device, timing steps after a warm-up
// with the peak-memory counter reset, and a main() that turns errors into one line.
#pragma once
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "cli/args.h"
#include "model/checkpoint.h"
#include "model/kernel_choice.h"
#include "train/device_memory.h"
#include "util/error.h"

namespace dsalign::bench {

// The model flags every step benchmark takes: shape, device, dtypes, checkpointing, step counts.
struct ModelFlags {
  std::string model, device, param_dtype, compute_dtype, kernels;
  int64_t steps = 0, warmup = 0;
  bool checkpointing = false;

  void add_to(cli::po::options_description& options) {
    options.add_options()
        ("model", cli::po::value(&model)->default_value("tiny"), "preset name or config.json")
        ("steps", cli::po::value(&steps)->default_value(5), "timed steps")
        ("warmup", cli::po::value(&warmup)->default_value(2), "untimed steps first")
        ("device", cli::po::value(&device)->default_value("cpu"), "cpu or cuda")
        ("param-dtype", cli::po::value(&param_dtype)->default_value("fp32"), "weights (master) dtype")
        ("compute-dtype", cli::po::value(&compute_dtype)->default_value("fp32"), "compute dtype (bf16 = autocast)")
        ("activation-checkpointing", cli::po::bool_switch(&checkpointing), "recompute layers in backward")
        ("kernels", cli::po::value(&kernels)->default_value("auto"), "auto, reference or fused (model.kernels)");
  }
  ModelConfig config() const { return model_preset(model) ? *model_preset(model) : load_model_config(model); }
  DecoderOptions options() const {
    DecoderOptions o;
    o.device = torch::Device(device);
    o.param_dtype = parse_dtype(param_dtype);
    o.compute_dtype = parse_dtype(compute_dtype);
    o.activation_checkpointing = checkpointing;
    if (o.device.is_cuda() && !torch::cuda::is_available()) fail("--device cuda: no CUDA device");
    o.kernels = choose_kernels(parse_kernel_mode(kernels), o.device);
    return o;
  }
};

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

// The run's figures as one JSON line (what scripts/gpu_check.sh collects into its report).
inline void print_record(const nlohmann::json& record) { std::printf("%s\n", record.dump().c_str()); }

inline int guarded_main(const char* name, const std::function<int()>& run) {
  try {
    return run();
  } catch (const std::exception& e) {
    std::cerr << name << ": error: " << first_line(e) << "\n";
    return 1;
  }
}

}  // namespace dsalign::bench
