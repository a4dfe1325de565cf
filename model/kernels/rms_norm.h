// Fused RMSNorm, forward and backward, on raw device pointers and a stream (no ATen here; the
// ATen wrapper, its checks and the autograd glue live in model/ops.cpp).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "model/kernels/dtype.h"

namespace dsalign::kernels {

// x, weight, y in `dtype`; rstd: [rows] fp32 (saved for backward).
// y[r, i] = weight[i] * dtype(x[r, i] * rstd[r]),  rstd[r] = 1 / sqrt(mean_i x[r, i]^2 + eps)
cudaError_t rms_norm_fwd(const void* x, const void* weight, void* y, float* rstd, int64_t rows, int64_t dim,
                         float eps, DType dtype, cudaStream_t stream);

// dx in `dtype`; dweight_partial: [blocks, dim] fp32 partial sums of dweight, one row per block
// (the caller sums them); blocks = rms_norm_bwd_blocks(rows).
cudaError_t rms_norm_bwd(const void* dy, const void* x, const void* weight, const float* rstd, void* dx,
                         float* dweight_partial, int64_t rows, int64_t dim, DType dtype, cudaStream_t stream);
int rms_norm_bwd_blocks(int64_t rows);

// Widest row the kernels take (backward keeps one fp32 dweight accumulator per column in shared memory).
constexpr int64_t kRmsNormMaxDim = 12288;

}  // namespace dsalign::kernels
