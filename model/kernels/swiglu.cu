// SwiGLU: elementwise, grid-stride, fp32 arithmetic. Memory-bound: forward moves 3 elements per
// output, backward 5.
#include "model/kernels/swiglu.h"
#include "model/kernels/convert.cuh"

namespace dsalign::kernels {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void swiglu_fwd_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = to_float(gate[i]);
    const float silu = to_float(from_float<T>(g / (1.f + expf(-g))));
    out[i] = from_float<T>(silu * to_float(up[i]));
  }
}

template <typename T>
__global__ void swiglu_bwd_kernel(const T* __restrict__ dy, const T* __restrict__ gate, const T* __restrict__ up,
                                  T* __restrict__ dgate, T* __restrict__ dup, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = to_float(gate[i]), u = to_float(up[i]), d = to_float(dy[i]);
    const float sig = 1.f / (1.f + expf(-g));
    dup[i] = from_float<T>(d * g * sig);
    dgate[i] = from_float<T>(d * u * sig * (1.f + g * (1.f - sig)));
  }
}

unsigned blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65535 * 8 ? (blocks > 0 ? blocks : 1) : 65535 * 8);
}

}  // namespace

cudaError_t swiglu_fwd(const void* gate, const void* up, void* out, int64_t n, DType dtype, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (dtype == DType::f32)
    swiglu_fwd_kernel<float><<<blocks_for(n), kThreads, 0, stream>>>(static_cast<const float*>(gate),
                                                                     static_cast<const float*>(up), static_cast<float*>(out), n);
  else
    swiglu_fwd_kernel<__nv_bfloat16><<<blocks_for(n), kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(gate), static_cast<const __nv_bfloat16*>(up), static_cast<__nv_bfloat16*>(out), n);
  return cudaGetLastError();
}

cudaError_t swiglu_bwd(const void* dy, const void* gate, const void* up, void* dgate, void* dup, int64_t n, DType dtype,
                       cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  if (dtype == DType::f32)
    swiglu_bwd_kernel<float><<<blocks_for(n), kThreads, 0, stream>>>(
        static_cast<const float*>(dy), static_cast<const float*>(gate), static_cast<const float*>(up),
        static_cast<float*>(dgate), static_cast<float*>(dup), n);
  else
    swiglu_bwd_kernel<__nv_bfloat16><<<blocks_for(n), kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(dy), static_cast<const __nv_bfloat16*>(gate),
        static_cast<const __nv_bfloat16*>(up), static_cast<__nv_bfloat16*>(dgate), static_cast<__nv_bfloat16*>(dup), n);
  return cudaGetLastError();
}

}  // namespace dsalign::kernels
