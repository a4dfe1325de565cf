// Times training steps (forward + backward, optionally AdamW) of a randomly initialised model of a
// given shape: tokens/s, MFU by DESIGN.md's FLOPs formula, peak memory. A baseline for later work;
// run the peer (shared bench scripts) in the same session for ratios.
//
//   dsalign_bench_step --model deepseek-coder-1.3b --seq-len 4096 --batch 2 --device cuda
//                      --param-dtype fp32 --compute-dtype bf16 --adamw --steps 10
//
// --strategy runs the step through DataParallel as the trainers do (ddp, zero1, zero2, zero3; one
// process, or the ranks torchrun's environment describes: torchrun --no-python --nproc-per-node N
// dsalign_bench_step ...), so zero3's gathering and releasing is timed against none.

#include <iostream>

#include "dist/data_parallel.h"
#include "dist/launch_env.h"
#include "model/checkpoint.h"
#include "model/inspect.h"
#include "train/device_memory.h"
#include "train/run_setup.h"
#include "bench/bench_util.h"
#include "cli/args.h"
#include "util/error.h"
#include "util/files.h"

using namespace dsalign;
namespace po = dsalign::cli::po;

namespace {

int run(int argc, char** argv) {
  bench::ModelFlags flags;
  int64_t seq_len = 0, batch = 0;
  double peak_tflops = 0;
  bool optimizer_step = false;
  std::string strategy;
  po::options_description options("dsalign_bench_step: time training steps on random tokens");
  flags.add_to(options);
  options.add_options()
      ("seq-len", po::value(&seq_len)->default_value(256), "tokens per sequence")
      ("batch", po::value(&batch)->default_value(2), "sequences per step (micro-batch)")
      ("adamw", po::bool_switch(&optimizer_step), "include an AdamW step (fp32 states)")
      ("strategy", po::value(&strategy)->default_value(""), "through DataParallel: none, ddp, zero1, zero2, zero3 (implies --adamw)")
      ("peak-tflops", po::value(&peak_tflops)->default_value(0), "device peak for MFU (0: 989 on H100/H200 bf16, else no MFU)");
  po::variables_map vm;
  if (!cli::parse(cli::Args(argv + 1, argv + argc), "dsalign_bench_step [options]", options, {}, vm)) return 0;

  const ModelConfig config = flags.config();
  const DecoderOptions o = flags.options();
  if (peak_tflops == 0 && o.device.is_cuda()) peak_tflops = 989.0;  // H100/H200 SXM dense bf16

  CausalLM model(config, o);
  model->init_weights(0);
  TrainConfig train;
  train.schedule.lr = 1e-5;
  train.beta2 = 0.95;
  train.weight_decay = 0.1;
  std::unique_ptr<AdamW> adamw;
  if (optimizer_step && strategy.empty()) {
    NamedTensors named;
    for (auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
    adamw = make_adamw(named, train, o.kernels.adamw == ops::Backend::kernels);
  }
  std::unique_ptr<Dist> dist;
  std::unique_ptr<DataParallel> dp;
  if (!strategy.empty()) {
    dist = std::make_unique<Dist>(Dist::connect(launch_env_from_process(), o.device, std::chrono::minutes(10)));
    dp = std::make_unique<DataParallel>(*dist, shard_strategy_from_name(strategy), model, train);
  }
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  torch::Tensor ids = torch::randint(config.vocab_size, {batch, seq_len}, gen, torch::kInt64).to(o.device);

  auto step = [&] {
    if (dp) dp->begin_step();
    auto [sum, count] = model->loss_sum({ids}, ids);
    (sum / count.to(torch::kFloat32)).backward();
    if (dp) {
      dp->after_micro_batch();
      dp->finish_gradients();
      dp->clip_grad_norm(1.0);
      dp->step(1e-5);
      return;
    }
    if (adamw) adamw->step(1e-5);
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  };
  const double seconds = bench::time_steps(step, flags.warmup, flags.steps, o.device);
  // Every rank runs `batch` sequences a step: the rate of the whole run.
  const int64_t ranks = dist ? dist->world_size() : 1;
  double tokens_per_s = static_cast<double>(flags.steps * batch * seq_len * ranks) / seconds;
  double flops = training_flops_per_token(config, seq_len) * tokens_per_s / static_cast<double>(ranks);  // per device
  if (dist && !dist->is_main()) return 0;
  std::printf("model %s seq %lld batch %lld device %s params %s compute %s%s%s%s\n", flags.model.c_str(),
              static_cast<long long>(seq_len), static_cast<long long>(batch), flags.device.c_str(), flags.param_dtype.c_str(),
              flags.compute_dtype.c_str(), flags.checkpointing ? " +checkpointing" : "", adamw || dp ? " +adamw" : "",
              dp ? (" strategy " + strategy + " on " + std::to_string(dist->world_size()) + " rank(s)").c_str() : "");
  std::printf("kernels %s\n", describe(o.kernels).c_str());
  bench::print_record({{"name", "dsalign kernels=" + flags.kernels + (dp ? " strategy=" + strategy : "")},
                       {"bench", "sft_step"},
                       {"seq", seq_len},
                       {"batch", batch},
                       {"kernels", describe(o.kernels)},
                       {"tokens_per_s", tokens_per_s},
                       {"step_s", seconds / static_cast<double>(flags.steps)},
                       {"peak_bytes", peak_memory_bytes(o.device)}});
  std::printf("tokens/s %.1f  step %.3f s  TFLOP/s %.2f  MFU %s  peak memory %s\n", tokens_per_s, seconds / flags.steps,
              flops / 1e12, peak_tflops > 0 ? std::to_string(flops / 1e12 / peak_tflops).substr(0, 5).c_str() : "n/a",
              human_bytes(peak_memory_bytes(o.device)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dsalign::bench::guarded_main("dsalign_bench_step", [&] { return run(argc, argv); });
}
