#include "model/kernel_mode.h"

#include "util/error.h"

namespace dsalign {

KernelMode parse_kernel_mode(const std::string& name) {
  if (name == "auto") return KernelMode::automatic;
  if (name == "reference") return KernelMode::reference;
  if (name == "fused") return KernelMode::fused;
  fail("kernels: '", name, "' is not one of auto, reference, fused");
}

const char* kernel_mode_name(KernelMode mode) {
  switch (mode) {
    case KernelMode::automatic: return "auto";
    case KernelMode::reference: return "reference";
    case KernelMode::fused: return "fused";
  }
  return "?";
}

}  // namespace dsalign
