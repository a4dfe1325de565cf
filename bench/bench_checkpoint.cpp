// The training loop's stall for a background checkpoint (issue 17): fp32 weights and AdamW moments
// of a model built from a config.json, snapshotted and written by train/training_checkpoint's
// CheckpointWriter as a training run does, several checkpoints in a row. Per checkpoint one JSON
// line: the stall (the copy into host buffers: what the step loop waits for), the write's time
// after it (in the background), the process's system time and page faults during the stall.
// --fresh takes every snapshot into new buffers (as before buffers were kept); --foreground
// writes inside the stall, as a synchronous trainer does. bench/checkpoint_speed.sh runs it
// beside torch.distributed.checkpoint and transformers' save.
// The config.json used is written to OUT, for the peers.
//   dsalign_bench_checkpoint --model PRESET|DIR --out DIR [--layers N] [--device cpu|cuda] [--checkpoints 3]
//                            [--fresh] [--foreground] [--pinned]
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bench/bench_util.h"
#include "bench/process_usage.h"
#include "cli/args.h"
#include "model/checkpoint.h"
#include "train/training_checkpoint.h"
#include "util/error.h"
#include "util/files.h"
#include "util/host_allocator.h"

using namespace dsalign;
using dsalign::bench::Usage;
using dsalign::bench::usage_now;

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

int run(int argc, char** argv) {
  cli::po::options_description options("options");
  std::string model_dir, out_dir, device;
  int64_t checkpoints = 3, layers = 0;
  bool fresh = false, foreground = false, pinned = false;
  options.add_options()("model", cli::po::value(&model_dir)->required(), "a preset, or a directory with a config.json")
      ("layers", cli::po::value(&layers)->default_value(0), "use this many decoder layers (0: the model's)")
      ("out", cli::po::value(&out_dir)->required(), "run directory the checkpoints go under (checkpoints/step_<N>)")
      ("device", cli::po::value(&device)->default_value("cpu"), "where the weights and AdamW state live: cpu or cuda")
      ("checkpoints", cli::po::value(&checkpoints)->default_value(3), "checkpoints in a row")
      ("fresh", cli::po::bool_switch(&fresh), "new host buffers for every snapshot")
      ("foreground", cli::po::bool_switch(&foreground), "write inside the stall (a synchronous trainer)")
      ("pinned", cli::po::bool_switch(&pinned), "page-lock the kept buffers of GPU tensors (not yet the trainer's default)")
      ("help,h", "show this help");
  cli::po::variables_map vm;
  cli::po::store(cli::po::parse_command_line(argc, argv, options), vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  cli::po::notify(vm);
  if (checkpoints < 1) fail("--checkpoints must be at least 1, got ", checkpoints);
  if (layers < 0) fail("--layers must be 0 (the model's) or more, got ", layers);
  std::optional<ModelConfig> preset = model_preset(model_dir);
  ModelConfig config = preset ? *preset : load_model_config(model_dir);
  if (layers > 0) config.num_hidden_layers = layers;
  fs::create_directories(out_dir);
  write_file_atomic(fs::path(out_dir) / "config.json", to_hf_config_json(config, "float32").dump(2) + "\n");
  DecoderOptions o;  // fp32 master weights
  o.device = cli::parse_device(device);
  CausalLM model(config, o);
  model->init_weights(0);
  NamedTensors named = checkpoint_tensors(model);
  AdamWGroup group;
  for (auto& [name, p] : named) group.params.push_back(p);
  AdamW optimizer({group}, AdamWSettings{});
  for (auto& [name, p] : named) optimizer.set_state(p, torch::randn_like(p), torch::rand_like(p), 1);
  int64_t state_bytes = 0;
  for (auto& [name, p] : named) state_bytes += 3 * static_cast<int64_t>(p.nbytes());
  auto writer = std::make_unique<CheckpointWriter>(!foreground, pinned);
  for (int64_t k = 1; k <= checkpoints; ++k) {
    if (fresh) {
      writer->wait();
      writer = std::make_unique<CheckpointWriter>(!foreground, pinned);
    }
    const Usage before = usage_now();
    const auto start = std::chrono::steady_clock::now();
    HostStaging& staging = writer->staging();
    CheckpointSnapshot s = snapshot_training_state(model, named, adamw_state_tensors(named, optimizer, staging), staging);
    s.dir = fs::path(out_dir) / "checkpoints" / ("step_" + std::to_string(k));
    s.state = {{"step", k}};
    s.keep_last = 1;
    writer->submit(std::move(s));
    const double stall = seconds_since(start);
    const Usage after = usage_now();
    const auto write_start = std::chrono::steady_clock::now();
    writer->wait();
    const double write = seconds_since(write_start);
    nlohmann::json line = {{"checkpoint", k},
                           {"device", device},
                           {"fresh", fresh},
                           {"foreground", foreground},
                           {"pinned", pinned},
                           {"state_bytes", state_bytes},
                           {"stall_s", stall},
                           {"write_after_stall_s", write},
                           {"stall_gib_per_s", static_cast<double>(state_bytes) / stall / (1 << 30)},
                           {"stall_sys_s", after.system - before.system},
                           {"stall_minor_faults", after.minor_faults - before.minor_faults},
                           {"max_rss_bytes", after.max_rss_bytes}};
    std::cout << line.dump() << std::endl;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory_for_reuse();  // as the dsalign executable does
  return bench::guarded_main("dsalign_bench_checkpoint", [&] { return run(argc, argv); });
}
