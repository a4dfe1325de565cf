// Fused rotary embedding (rotate-half layout) applied to q and k in one launch, forward and
// backward, on raw device pointers and a stream (the ATen glue is in model/fused_ops.cpp).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "model/kernels/dtype.h"

namespace dsalign::kernels {

// One tensor of [B, heads, T, hd] elements: element (b, h, t, i) at b * stride_b + h * stride_h +
// t * stride_t + i (the last dimension contiguous: q and k as views of the projections).
struct RopeTensor {
  const void* in = nullptr;
  void* out = nullptr;  // contiguous [B, heads, T, hd]
  int64_t heads = 0, stride_b = 0, stride_h = 0, stride_t = 0;
};

// With half = hd / 2 and cos, sin: [B, T, hd] contiguous fp32 tables,
//   forward:   out[i] = in[i] * cos[i] + (i < half ? -in[i + half] : in[i - half]) * sin[i]
//   backward:  out[i] = in[i] * cos[i] + (i < half ? in[i + half] * sin[i + half] : -in[i - half] * sin[i - half])
// (backward's `in` is the incoming gradient, `out` the input's gradient), for q and k together.
cudaError_t rope_apply(RopeTensor q, RopeTensor k, const float* cos, const float* sin, int64_t batch, int64_t tokens,
                       int64_t head_dim, bool backward, DType dtype, cudaStream_t stream);

}  // namespace dsalign::kernels
