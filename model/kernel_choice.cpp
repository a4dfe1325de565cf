#include "model/kernel_choice.h"

#include <algorithm>

namespace dsalign {
namespace {

constexpr const char* kOps[] = {"rms_norm", "swiglu", "rope", "cross_entropy", "attention", "adamw"};

ops::Backend& slot(ops::Kernels& k, const std::string& op) {
  if (op == "rms_norm") return k.rms_norm;
  if (op == "swiglu") return k.swiglu;
  if (op == "rope") return k.rope;
  if (op == "cross_entropy") return k.cross_entropy;
  if (op == "attention") return k.attention;
  return k.adamw;
}

}  // namespace

const std::vector<VerifiedKernel>& verified_kernels() {
  // Add a CUDA row only with the date and GPU of a scripts/gpu_check.sh run where its tests passed.
  static const std::vector<VerifiedKernel> verified = {
      {"adamw", "cpu", "2026-12-02", "tests AdamW.* (at::_fused_adamw_ against torch::optim::AdamW), 2-core CI machine"},
      {"cross_entropy", "cpu", "2026-12-02", "tests FusedLinearCrossEntropy.* (against ops::reference), 2-core CI machine"},
  };
  return verified;
}

std::vector<std::string> fused_kernels_available(const torch::Device& device) {
  if (device.is_cpu()) return {"cross_entropy", "adamw"};
  std::vector<std::string> ops = {"cross_entropy", "adamw", "attention"};
  if (ops::kernels_compiled()) ops.insert(ops.end(), {"rms_norm", "swiglu", "rope"});
  return ops;
}

ops::Kernels choose_kernels(KernelMode mode, const torch::Device& device) {
  ops::Kernels k;
  if (mode == KernelMode::reference) return k;
  const std::string kind = device.is_cuda() ? "cuda" : "cpu";
  for (const std::string& op : fused_kernels_available(device)) {
    const auto& verified = verified_kernels();
    const bool ok = std::any_of(verified.begin(), verified.end(),
                                [&](const VerifiedKernel& v) { return op == v.op && kind == v.device; });
    if (mode == KernelMode::fused || ok) slot(k, op) = ops::Backend::kernels;
  }
  return k;
}

std::string describe(const ops::Kernels& kernels) {
  ops::Kernels k = kernels;
  std::string out;
  for (const char* op : kOps)
    out += std::string(out.empty() ? "" : " ") + op + "=" + (slot(k, op) == ops::Backend::kernels ? "fused" : "reference");
  return out;
}

}  // namespace dsalign
