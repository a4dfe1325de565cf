// One checkpoint load into a model built from its config.json, measured from inside the process:
// wall time of load_weights (and until every parameter byte has been read once), the process's user and system time and page faults during it, and
// its peak resident memory. One JSON line. bench/load_speed.sh runs it per method beside
// transformers' from_pretrained on the same files.
// On a GPU (--device cuda), pread is the pinned staging ring (WeightReadOptions::device_staging)
// and mmap the copy from the map; the time includes the copies' completion.
//   dsalign_bench_load --model DIR [--dtype bf16|fp32] [--device cpu|cuda] [--method pread|mmap] [--threads N]
//                      [--no-huge-pages] [--map]
#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bench/bench_util.h"
#include "bench/process_usage.h"
#include "cli/args.h"
#include "model/checkpoint.h"
#include "util/error.h"
#include "util/host_allocator.h"

using namespace dsalign;
using dsalign::bench::Usage;
using dsalign::bench::usage_now;

namespace {

int run(int argc, char** argv) {
  cli::po::options_description options("options");
  std::string model_dir, dtype, method, device;
  WeightReadOptions read;
  bool no_huge_pages = false;
  options.add_options()("model", cli::po::value(&model_dir)->required(), "checkpoint directory")
      ("dtype", cli::po::value(&dtype)->default_value("bf16"), "parameter dtype: bf16 or fp32")
      ("device", cli::po::value(&device)->default_value("cpu"), "where the parameters live: cpu or cuda")
      ("method", cli::po::value(&method)->default_value("pread"),
       "pread (model/weight_reader; on a GPU through the pinned ring) or mmap (copy from the map)")
      ("threads", cli::po::value(&read.threads)->default_value(0), "pread threads (0: hardware threads, at most 8)")
      ("block-mib", cli::po::value<int64_t>()->default_value(16), "bytes one pread moves, MiB")
      ("no-huge-pages", cli::po::bool_switch(&no_huge_pages), "do not advise huge pages for the destinations")
      ("map", cli::po::bool_switch(&read.map_same_dtype), "leave parameters of the file's dtype on its mapping (then read every byte once)")
      ("help,h", "show this help");
  cli::po::variables_map vm;
  cli::po::store(cli::po::parse_command_line(argc, argv, options), vm);
  if (vm.count("help")) {
    std::cout << options;
    return 0;
  }
  cli::po::notify(vm);
  if (method != "pread" && method != "mmap") fail("--method must be pread or mmap, got '", method, "'");
  read.pread = method == "pread";
  read.device_staging = read.pread;
  read.huge_pages = !no_huge_pages;
  read.block_bytes = vm["block-mib"].as<int64_t>() << 20;
  DecoderOptions o;
  o.param_dtype = o.compute_dtype = parse_dtype(dtype);
  o.device = cli::parse_device(device);
  CausalLM model(load_model_config(model_dir), o);
  if (o.device.is_cuda()) torch::cuda::synchronize();
  const Usage before = usage_now();
  const auto start = std::chrono::steady_clock::now();
  const LoadReport report = load_weights(model, model_dir, read);
  if (o.device.is_cuda()) torch::cuda::synchronize();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  // Then every parameter byte read once: what a mapped parameter costs when first used.
  double sum = 0;
  for (const auto& p : model->parameters()) sum += p.detach().view({-1}).max().item<double>();
  const double all_bytes_read = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const Usage after = usage_now();
  int64_t param_bytes = 0;
  for (const auto& p : model->parameters()) param_bytes += static_cast<int64_t>(p.nbytes());
  nlohmann::json line = {{"method", method},
                         {"device", device},
                         {"threads", read.threads},
                         {"huge_pages", read.huge_pages},
                         {"dtype", dtype},
                         {"file_bytes", report.bytes_read},
                         {"param_bytes", param_bytes},
                         {"map", read.map_same_dtype},
                         {"seconds", seconds},
                         {"all_bytes_read_s", all_bytes_read},
                         {"max_sum", sum},
                         {"file_gib_per_s", static_cast<double>(report.bytes_read) / seconds / (1 << 30)},
                         {"user_s", after.user - before.user},
                         {"sys_s", after.system - before.system},
                         {"minor_faults", after.minor_faults - before.minor_faults},
                         {"major_faults", after.major_faults - before.major_faults},
                         {"max_rss_bytes", after.max_rss_bytes}};
  std::cout << line.dump() << std::endl;
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory_for_reuse();  // as the dsalign executable does
  return bench::guarded_main("dsalign_bench_load", [&] { return run(argc, argv); });
}
