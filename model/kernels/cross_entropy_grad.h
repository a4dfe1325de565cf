// The elementwise step of the chunked linear-cross-entropy (model/chunked_loss): a chunk of logits
// turned, in place, into the gradient of its summed cross-entropy, on raw device pointers and a
// stream (the ATen wrapper and its checks are in model/chunked_loss.cpp).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "model/kernels/dtype.h"

namespace dsalign::kernels {

// logits: [rows, vocab] in `dtype`, row-major; targets: [rows] int64 in [0, vocab), or -100.
// For each row r, with lse_r = log sum_j exp(logits[r, j]):
//   loss[r]      = lse_r - logits[r, target_r]                       (fp32)
//   logits[r, j] = exp(logits[r, j] - lse_r) - (j == target_r)      (in place, rounded to dtype)
// A row with target -100 gets loss 0 and zeros; any other target outside [0, vocab) loss NaN
// and zeros (the caller's non-finite check reports it; no out-of-bounds access).
cudaError_t cross_entropy_grad_inplace(void* logits, const int64_t* targets, float* loss, int64_t rows, int64_t vocab,
                                       DType dtype, cudaStream_t stream);

}  // namespace dsalign::kernels
