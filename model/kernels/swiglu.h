// Fused SwiGLU, forward and backward, on raw device pointers and a stream (the ATen glue is in
// model/fused_ops.cpp).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "model/kernels/dtype.h"

namespace dsalign::kernels {

// out[i] = dtype(silu(gate[i])) * up[i] over n contiguous elements (silu rounded to the dtype
// first, as torch::silu(gate) * up does).
cudaError_t swiglu_fwd(const void* gate, const void* up, void* out, int64_t n, DType dtype, cudaStream_t stream);

// dgate = dy * up * silu'(gate), dup = dy * silu(gate); the sigmoid is recomputed, nothing saved
// but the inputs. All arithmetic in fp32, each result rounded once.
cudaError_t swiglu_bwd(const void* dy, const void* gate, const void* up, void* dgate, void* dup, int64_t n, DType dtype,
                       cudaStream_t stream);

}  // namespace dsalign::kernels
