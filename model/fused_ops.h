// The autograd glue of the fused CUDA kernels (model/kernels/): shape, dtype and device checks,
// the current stream, and backward. Compiled only with CUDA; ops:: (model/ops.cpp) calls these
// when Backend::kernels is chosen and *_applies says the kernel takes the tensors, and the
// reference otherwise.
#pragma once
#include <torch/torch.h>

#include <utility>

namespace dsalign::ops::fused {

// x and weight of one dtype, fp32 or bf16, on a GPU, rows of at most kRmsNormMaxDim.
bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight);
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);

// gate and up of one shape and dtype, fp32 or bf16, on a GPU.
bool swiglu_applies(const torch::Tensor& gate, const torch::Tensor& up);
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);

// q [B, H, T, hd] and k [B, H_kv, T, hd] of one dtype, fp32 or bf16, on a GPU, last dimension
// contiguous and even; cos, sin [B, T, hd] (converted to contiguous fp32 here).
bool rope_applies(const torch::Tensor& q, const torch::Tensor& k);
std::pair<torch::Tensor, torch::Tensor> rope(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& cos,
                                             const torch::Tensor& sin);

}  // namespace dsalign::ops::fused
