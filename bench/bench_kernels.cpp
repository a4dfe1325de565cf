// Each fused op beside its reference on one shape: milliseconds per call and the bandwidth it
// achieves (bytes it must move / time; an H100 SXM moves about 3.35 TB/s, an H200 4.8 TB/s).
//   rms_norm            forward + backward: reference, fused kernel, at::_fused_rms_norm
//   cross_entropy_grad  the chunked loss's elementwise step: LibTorch, CUDA kernel
//
//   dsalign_bench_kernels --device cuda --rows 8192 --hidden 2048 --vocab 102400 --chunk-rows 655

#include <cstdio>

#include "bench/bench_util.h"
#include "cli/args.h"
#include "model/chunked_loss.h"
#include "model/ops.h"

using namespace dsalign;
namespace po = dsalign::cli::po;

namespace {

void report(const std::string& op, const std::string& impl, const std::string& dtype, double seconds, double bytes) {
  std::printf("%-20s %-18s %-5s %9.3f ms  %7.0f GB/s\n", op.c_str(), impl.c_str(), dtype.c_str(), seconds * 1e3,
              bytes / seconds / 1e9);
  bench::print_record({{"name", op + " " + impl + " " + dtype},
                       {"bench", "kernel"},
                       {"ms", seconds * 1e3},
                       {"gb_per_s", bytes / seconds / 1e9}});
}

int run(int argc, char** argv) {
  std::string device_name;
  int64_t rows = 0, hidden = 0, vocab = 0, chunk_rows = 0, steps = 0;
  po::options_description options("dsalign_bench_kernels: each fused op against its reference");
  options.add_options()
      ("device", po::value(&device_name)->default_value("cuda"), "cuda (or cpu, to exercise the harness)")
      ("rows", po::value(&rows)->default_value(8192), "tokens (rows of the norm's input)")
      ("hidden", po::value(&hidden)->default_value(2048), "hidden size")
      ("vocab", po::value(&vocab)->default_value(102400), "vocabulary size")
      ("chunk-rows", po::value(&chunk_rows)->default_value(0), "logits rows of one loss chunk (0: the default chunk)")
      ("steps", po::value(&steps)->default_value(20), "timed calls (after 3 warm-up calls)");
  po::variables_map vm;
  if (!cli::parse(cli::Args(argv + 1, argv + argc), "dsalign_bench_kernels [options]", options, {}, vm)) return 0;
  const torch::Device device(device_name);
  if (device.is_cuda() && !torch::cuda::is_available()) fail("--device cuda: no CUDA device");
  if (chunk_rows <= 0) chunk_rows = ops::default_chunk_rows(vocab);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  auto timed = [&](const std::function<void()>& fn) { return bench::time_steps(fn, 3, steps, device) / static_cast<double>(steps); };

  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const std::string name = dtype == torch::kFloat32 ? "fp32" : "bf16";
    const double element = dtype == torch::kFloat32 ? 4 : 2;
    torch::Tensor x = torch::randn({rows, hidden}, gen).to(device, dtype).requires_grad_(true);
    torch::Tensor w = (1 + 0.1 * torch::randn({hidden}, gen)).to(device, dtype).requires_grad_(true);
    torch::Tensor dy = torch::randn({rows, hidden}, gen).to(device, dtype);
    // Forward reads x, writes y; backward reads dy, x, writes dx: 5 passes over [rows, hidden].
    const double norm_bytes = 5.0 * static_cast<double>(rows * hidden) * element;
    auto norm = [&](const std::function<torch::Tensor()>& forward) {
      return [&, forward] {
        torch::Tensor y = forward();
        auto grads = torch::autograd::grad({y}, {x, w}, {dy});
      };
    };
    report("rms_norm", "reference", name, timed(norm([&] { return ops::rms_norm(x, w, 1e-6, ops::Backend::reference); })),
           norm_bytes);
    if (device.is_cuda() && ops::kernels_compiled())
      report("rms_norm", "fused kernel", name, timed(norm([&] { return ops::rms_norm(x, w, 1e-6, ops::Backend::kernels); })),
             norm_bytes);
    report("rms_norm", "at::_fused_rms_norm", name,
           timed(norm([&] { return std::get<0>(at::_fused_rms_norm(x, {hidden}, w, 1e-6)); })), norm_bytes);

    torch::Tensor logits = torch::randn({chunk_rows, vocab}, gen).mul_(3).to(device, dtype);
    torch::Tensor targets = torch::randint(vocab, {chunk_rows}, gen, torch::kInt64).to(device);
    torch::Tensor work = logits.clone();
    // The step reads each logit twice and writes it once; the copy that restores the input is
    // timed apart and subtracted.
    const double ce_bytes = 3.0 * static_cast<double>(chunk_rows * vocab) * element;
    const double copy = timed([&] { work.copy_(logits); });
    for (bool kernel : {false, true}) {
      if (kernel && !(device.is_cuda() && ops::kernels_compiled())) continue;
      const double total = timed([&] {
        work.copy_(logits);
        ops::cross_entropy_grad_(work, targets, kernel);
      });
      report("cross_entropy_grad", kernel ? "fused kernel" : "libtorch", name, std::max(total - copy, 1e-9), ce_bytes);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dsalign::bench::guarded_main("dsalign_bench_kernels", [&] { return run(argc, argv); });
}
