// model.kernels: auto | reference | fused, resolved for the device a run uses.
//   reference  every op's plain-LibTorch reference (ops::reference, the reference AdamW update)
//   fused      every fused implementation this build has for that device, verified or not
//   auto       fused only for the (op, device) pairs in kVerifiedKernels: those a recorded run
//              checked against the reference (the tests here on CPU; scripts/gpu_check.sh on a
//              GPU); reference otherwise. No CUDA path is in the list before it passed on a GPU.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "model/kernel_mode.h"
#include "model/ops.h"

namespace dsalign {

struct VerifiedKernel {
  const char* op;       // rms_norm, swiglu, rope, cross_entropy, attention, adamw
  const char* device;   // cpu | cuda
  const char* date;     // of the run that verified it
  const char* machine;  // where, and by what
};
const std::vector<VerifiedKernel>& verified_kernels();

// The ops that have a fused implementation on `device` in this build.
std::vector<std::string> fused_kernels_available(const torch::Device& device);

ops::Kernels choose_kernels(KernelMode mode, const torch::Device& device);

// "rms_norm=reference cross_entropy=fused ..." for logs and bench reports.
std::string describe(const ops::Kernels& kernels);

}  // namespace dsalign
