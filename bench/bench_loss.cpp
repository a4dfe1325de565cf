// The loss head alone: forward + backward of the SFT cross-entropy over `rows` hidden states and a
// `vocab`-word output layer, reference (full logits through autograd) or fused (model/chunked_loss),
// with its time and peak memory (above what the inputs hold). The elementwise step alone is in
// dsalign_bench_kernels.
//
//   dsalign_bench_loss --impl reference --rows 8192 --vocab 102400 --hidden 2048
//   dsalign_bench_loss --impl fused     --rows 8192 --vocab 102400 --hidden 2048
//
// Run each implementation in its own process: on CPU the peak is the process's resident set.

#include <cstdio>

#include "bench/bench_util.h"
#include "cli/args.h"
#include "model/chunked_loss.h"
#include "model/ops.h"
#include "train/device_memory.h"
#include "util/files.h"

using namespace dsalign;
namespace po = dsalign::cli::po;

namespace {

int run(int argc, char** argv) {
  std::string impl, device_name, dtype_name;
  int64_t rows = 0, vocab = 0, hidden = 0, steps = 0, chunk = 0;
  po::options_description options("dsalign_bench_loss: time and peak memory of the SFT loss head");
  options.add_options()
      ("impl", po::value(&impl)->default_value("fused"), "reference or fused")
      ("rows", po::value(&rows)->default_value(8192), "hidden states (tokens with a target)")
      ("vocab", po::value(&vocab)->default_value(102400), "vocabulary size")
      ("hidden", po::value(&hidden)->default_value(2048), "hidden size")
      ("chunk-rows", po::value(&chunk)->default_value(0), "fused: rows per chunk (0: about 256 MiB of fp32 logits)")
      ("device", po::value(&device_name)->default_value("cpu"), "cpu or cuda")
      ("dtype", po::value(&dtype_name)->default_value("fp32"), "hidden states' dtype (fp32 or bf16; the weight is fp32)")
      ("steps", po::value(&steps)->default_value(3), "timed repetitions (after one warm-up)");
  po::variables_map vm;
  if (!cli::parse(cli::Args(argv + 1, argv + argc), "dsalign_bench_loss [options]", options, {}, vm)) return 0;
  if (impl != "reference" && impl != "fused") fail("--impl: '", impl, "' is not reference or fused");
  const torch::Device device(device_name);
  if (device.is_cuda() && !torch::cuda::is_available()) fail("--device cuda: no CUDA device");
  const torch::ScalarType dtype = parse_dtype(dtype_name);

  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  torch::Tensor targets = torch::randint(vocab, {rows}, gen, torch::kInt64).to(device);
  torch::Tensor h = torch::randn({rows, hidden}, gen).to(device, dtype).requires_grad_(true);
  torch::Tensor w = (torch::randn({vocab, hidden}, gen) * 0.02).to(device).requires_grad_(true);
  auto step = [&] {
    torch::Tensor loss = impl == "fused" ? ops::fused_linear_cross_entropy_sum(h, w, targets, chunk, true)
                                         : ops::reference::linear_cross_entropy_sum(h, w.to(dtype), targets);
    loss.backward();
    h.mutable_grad() = torch::Tensor();
    w.mutable_grad() = torch::Tensor();
  };
  bench::synchronize(device);
  const double baseline = peak_memory_bytes(device);  // the inputs, before any step
  const double seconds = bench::time_steps(step, 1, steps, device) / static_cast<double>(steps);
  const double peak = peak_memory_bytes(device) - baseline;
  std::printf("loss %s rows %lld vocab %lld hidden %lld %s on %s: %.1f ms per forward+backward, peak %s above the inputs\n",
              impl.c_str(), static_cast<long long>(rows), static_cast<long long>(vocab), static_cast<long long>(hidden),
              dtype_name.c_str(), device_name.c_str(), seconds * 1e3, human_bytes(peak).c_str());
  bench::print_record({{"name", "loss head " + impl + " " + dtype_name},
                       {"bench", "loss"},
                       {"rows", rows},
                       {"vocab", vocab},
                       {"hidden", hidden},
                       {"ms", seconds * 1e3},
                       {"peak_bytes", peak}});
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dsalign::bench::guarded_main("dsalign_bench_loss", [&] { return run(argc, argv); });
}
