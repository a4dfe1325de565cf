// Softmax-minus-one-hot in place, one 512-thread block per row.
//
// Pass 1 keeps, per thread, a running maximum and the sum of exp(x - max) over its strided
// elements (the online-softmax rescaling), then combines the threads' pairs across the block
// (warp shuffles, then shared memory). Pass 2 rereads the row and writes exp(x - lse), minus one
// at the target. All arithmetic is fp32; only the stored gradient is rounded to the logits'
// dtype. A row is read twice and written once: the bandwidth floor is 3 * rows * vocab elements.
#include <cmath>

#include "model/kernels/cross_entropy_grad.h"
#include "model/kernels/convert.cuh"

namespace dsalign::kernels {
namespace {

constexpr int kThreads = 512;

// Merges (m1, s1) and (m2, s2), each a maximum and a sum of exp(x - maximum).
__device__ __forceinline__ void merge(float& m, float& s, float m2, float s2) {
  const float top = fmaxf(m, m2);
  if (top == -INFINITY) return;  // both empty
  s = s * expf(m - top) + s2 * expf(m2 - top);
  m = top;
}

template <typename T>
__global__ void cross_entropy_grad_kernel(T* __restrict__ logits, const int64_t* __restrict__ targets,
                                          float* __restrict__ loss, int64_t vocab) {
  __shared__ float max_scratch[kThreads / 32], sum_scratch[kThreads / 32];
  __shared__ float lse_shared;
  T* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  const int64_t target = targets[blockIdx.x];
  if (target < 0 || target >= vocab) {  // ignored (-100) or out of range: no gradient
    for (int64_t j = threadIdx.x; j < vocab; j += kThreads) row[j] = from_float<T>(0.f);
    if (threadIdx.x == 0) loss[blockIdx.x] = target == -100 ? 0.f : NAN;
    return;
  }
  float m = -INFINITY, s = 0.f;
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) {
    const float v = to_float(row[j]);
    if (v > m) {
      s = s * expf(m - v) + 1.f;
      m = v;
    } else {
      s += expf(v - m);
    }
  }
  for (int offset = 16; offset > 0; offset /= 2)
    merge(m, s, __shfl_xor_sync(0xffffffff, m, offset), __shfl_xor_sync(0xffffffff, s, offset));
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) {
    max_scratch[warp] = m;
    sum_scratch[warp] = s;
  }
  __syncthreads();
  if (threadIdx.x == 0) {  // reads the target logit before the __syncthreads() that lets pass 2 overwrite it
    float bm = -INFINITY, bs = 0.f;
    for (int w = 0; w < kThreads / 32; ++w) merge(bm, bs, max_scratch[w], sum_scratch[w]);
    const float lse = bm + logf(bs);
    lse_shared = lse;
    loss[blockIdx.x] = lse - to_float(row[target]);
  }
  __syncthreads();
  const float lse = lse_shared;
  for (int64_t j = threadIdx.x; j < vocab; j += kThreads) {
    const float p = expf(to_float(row[j]) - lse);
    row[j] = from_float<T>(j == target ? p - 1.f : p);
  }
}

}  // namespace

cudaError_t cross_entropy_grad_inplace(void* logits, const int64_t* targets, float* loss, int64_t rows, int64_t vocab,
                                       DType dtype, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (dtype == DType::f32)
    cross_entropy_grad_kernel<float><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        static_cast<float*>(logits), targets, loss, vocab);
  else
    cross_entropy_grad_kernel<__nv_bfloat16><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
        static_cast<__nv_bfloat16*>(logits), targets, loss, vocab);
  return cudaGetLastError();
}

}  // namespace dsalign::kernels
