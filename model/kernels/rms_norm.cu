// Fused RMSNorm (transformers' LlamaRMSNorm numerics).
//
// Design: one 256-thread block per row. Forward reads x once into registers-by-loop, reduces the
// sum of squares in fp32 (warp shuffles, then shared memory across warps), writes y and keeps
// rstd per row for backward: nothing else is stored. The normalised value is rounded to the input
// dtype before the weight multiply, as the reference does, so fp32 and bf16 outputs match it.
// Backward recomputes x_hat from x and rstd; blocks stride over rows and accumulate dweight for
// their rows in shared memory (`+=`), then write one partial row each (`=`); the caller sums the
// partials, so there are no atomics and the result is deterministic.
#include "model/kernels/rms_norm.h"
#include "model/kernels/convert.cuh"

namespace dsalign::kernels {
namespace {

constexpr int kThreads = 256;

// Sum of `v` over the block; every thread gets the result.
__device__ float block_sum(float v, float* scratch) {
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffff, v, offset);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.f;
  for (int w = 0; w < kThreads / 32; ++w) total += scratch[w];
  __syncthreads();  // scratch is reused by the next call
  return total;
}

// ---------------------------------------------------------------------------------------------
// kernels

template <typename T>
__global__ void rms_norm_fwd_kernel(const T* __restrict__ x, const T* __restrict__ weight, T* __restrict__ y,
                                    float* __restrict__ rstd, int64_t dim, float eps) {
  __shared__ float scratch[kThreads / 32];
  const int64_t row = blockIdx.x;
  const T* xr = x + row * dim;
  T* yr = y + row * dim;
  float sum_sq = 0.f;
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    float v = to_float(xr[i]);
    sum_sq += v * v;
  }
  const float r = rsqrtf(block_sum(sum_sq, scratch) / static_cast<float>(dim) + eps);
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
    float normed = to_float(from_float<T>(to_float(xr[i]) * r));  // rounded to T, as the reference
    yr[i] = from_float<T>(to_float(weight[i]) * normed);
  }
  if (threadIdx.x == 0) rstd[row] = r;
}

template <typename T>
__global__ void rms_norm_bwd_kernel(const T* __restrict__ dy, const T* __restrict__ x, const T* __restrict__ weight,
                                    const float* __restrict__ rstd, T* __restrict__ dx,
                                    float* __restrict__ dweight_partial, int64_t rows, int64_t dim) {
  extern __shared__ float dweight_acc[];  // [dim]
  __shared__ float scratch[kThreads / 32];
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) dweight_acc[i] = 0.f;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const T* dyr = dy + row * dim;
    const T* xr = x + row * dim;
    T* dxr = dx + row * dim;
    const float r = rstd[row];
    // dx = r * (g - x_hat * mean(g * x_hat)), g = dy * weight
    float dot = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
      float x_hat = to_float(xr[i]) * r;
      float g = to_float(dyr[i]) * to_float(weight[i]);
      dot += g * x_hat;
      dweight_acc[i] += to_float(dyr[i]) * to_float(from_float<T>(x_hat));  // same column per thread: no race
    }
    const float mean_dot = block_sum(dot, scratch) / static_cast<float>(dim);
    for (int64_t i = threadIdx.x; i < dim; i += kThreads) {
      float x_hat = to_float(xr[i]) * r;
      float g = to_float(dyr[i]) * to_float(weight[i]);
      dxr[i] = from_float<T>(r * (g - x_hat * mean_dot));
    }
  }
  for (int64_t i = threadIdx.x; i < dim; i += kThreads) dweight_partial[blockIdx.x * dim + i] = dweight_acc[i];
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// launchers

cudaError_t rms_norm_fwd(const void* x, const void* weight, void* y, float* rstd, int64_t rows, int64_t dim,
                         float eps, DType dtype, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  if (dtype == DType::f32)
    rms_norm_fwd_kernel<float><<<rows, kThreads, 0, stream>>>(static_cast<const float*>(x), static_cast<const float*>(weight),
                                                              static_cast<float*>(y), rstd, dim, eps);
  else
    rms_norm_fwd_kernel<__nv_bfloat16><<<rows, kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(x), static_cast<const __nv_bfloat16*>(weight),
        static_cast<__nv_bfloat16*>(y), rstd, dim, eps);
  return cudaGetLastError();
}

int rms_norm_bwd_blocks(int64_t rows) {
  // Enough blocks to fill an H100 (132 SMs) a few times over, few enough that the partials are small.
  return static_cast<int>(rows < 528 ? (rows > 0 ? rows : 1) : 528);
}

cudaError_t rms_norm_bwd(const void* dy, const void* x, const void* weight, const float* rstd, void* dx,
                         float* dweight_partial, int64_t rows, int64_t dim, DType dtype, cudaStream_t stream) {
  const int blocks = rms_norm_bwd_blocks(rows);
  const size_t shared = static_cast<size_t>(dim) * sizeof(float);
  if (dtype == DType::f32) {
    auto kernel = rms_norm_bwd_kernel<float>;
    if (shared > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    kernel<<<blocks, kThreads, shared, stream>>>(static_cast<const float*>(dy), static_cast<const float*>(x),
                                                 static_cast<const float*>(weight), rstd, static_cast<float*>(dx),
                                                 dweight_partial, rows, dim);
  } else {
    auto kernel = rms_norm_bwd_kernel<__nv_bfloat16>;
    if (shared > 48 * 1024) cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shared));
    kernel<<<blocks, kThreads, shared, stream>>>(
        static_cast<const __nv_bfloat16*>(dy), static_cast<const __nv_bfloat16*>(x),
        static_cast<const __nv_bfloat16*>(weight), rstd, static_cast<__nv_bfloat16*>(dx), dweight_partial, rows, dim);
  }
  return cudaGetLastError();
}

}  // namespace dsalign::kernels
