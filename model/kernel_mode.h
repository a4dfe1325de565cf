// model.kernels as a recipe writes it: auto | reference | fused (what each means:
// model/kernel_choice.h). Here, apart from LibTorch, so recipe parsing needs none.
#pragma once
#include <string>

namespace dsalign {

enum class KernelMode { automatic, reference, fused };

KernelMode parse_kernel_mode(const std::string& name);  // "auto" | "reference" | "fused"
const char* kernel_mode_name(KernelMode mode);

}  // namespace dsalign
