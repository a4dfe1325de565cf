// RoPE: one thread per rotated pair (i, i + half) of one (tensor, b, h, t) row, grid-stride over
// q's pairs then k's; fp32 arithmetic, the output rounded once. Memory-bound: reads the row and
// its cos/sin, writes the row.
#include "model/kernels/rope.h"
#include "model/kernels/convert.cuh"

namespace dsalign::kernels {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void rope_kernel(RopeTensor q, RopeTensor k, const float* __restrict__ cos, const float* __restrict__ sin,
                            int64_t batch, int64_t tokens, int64_t head_dim, bool backward) {
  const int64_t half = head_dim / 2;
  const int64_t q_pairs = batch * q.heads * tokens * half, total = q_pairs + batch * k.heads * tokens * half;
  for (int64_t p = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; p < total;
       p += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const bool is_q = p < q_pairs;
    const RopeTensor& x = is_q ? q : k;
    int64_t rest = is_q ? p : p - q_pairs;
    const int64_t i = rest % half;
    rest /= half;
    const int64_t t = rest % tokens;
    rest /= tokens;
    const int64_t h = rest % x.heads, b = rest / x.heads;
    const T* in = static_cast<const T*>(x.in) + b * x.stride_b + h * x.stride_h + t * x.stride_t;
    T* out = static_cast<T*>(x.out) + ((b * x.heads + h) * tokens + t) * head_dim;
    const float* c = cos + (b * tokens + t) * head_dim;
    const float* s = sin + (b * tokens + t) * head_dim;
    const float x1 = to_float(in[i]), x2 = to_float(in[i + half]);
    if (!backward) {
      out[i] = from_float<T>(x1 * c[i] - x2 * s[i]);
      out[i + half] = from_float<T>(x2 * c[i + half] + x1 * s[i + half]);
    } else {
      out[i] = from_float<T>(x1 * c[i] + x2 * s[i + half]);
      out[i + half] = from_float<T>(x2 * c[i + half] - x1 * s[i]);
    }
  }
}

}  // namespace

cudaError_t rope_apply(RopeTensor q, RopeTensor k, const float* cos, const float* sin, int64_t batch, int64_t tokens,
                       int64_t head_dim, bool backward, DType dtype, cudaStream_t stream) {
  const int64_t total = batch * (q.heads + k.heads) * tokens * (head_dim / 2);
  if (total == 0) return cudaSuccess;
  const int64_t wanted = (total + kThreads - 1) / kThreads;
  const unsigned blocks = static_cast<unsigned>(wanted < 65535 * 8 ? wanted : 65535 * 8);
  if (dtype == DType::f32)
    rope_kernel<float><<<blocks, kThreads, 0, stream>>>(q, k, cos, sin, batch, tokens, head_dim, backward);
  else
    rope_kernel<__nv_bfloat16><<<blocks, kThreads, 0, stream>>>(q, k, cos, sin, batch, tokens, head_dim, backward);
  return cudaGetLastError();
}

}  // namespace dsalign::kernels
