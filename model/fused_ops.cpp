#include "model/fused_ops.h"

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/kernels/rms_norm.h"
#include "model/kernels/rope.h"
#include "model/kernels/swiglu.h"

namespace dsalign::ops::fused {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

void check_cuda(cudaError_t status, const char* what) {
  TORCH_CHECK(status == cudaSuccess, what, ": ", cudaGetErrorString(status));
}

kernels::DType kernel_dtype(torch::ScalarType t) {
  return t == torch::kBFloat16 ? kernels::DType::bf16 : kernels::DType::f32;
}

bool fp32_or_bf16(const torch::Tensor& t) {
  return t.scalar_type() == torch::kFloat32 || t.scalar_type() == torch::kBFloat16;
}

struct FusedRmsNorm : torch::autograd::Function<FusedRmsNorm> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x_in, const torch::Tensor& weight, double eps) {
    c10::cuda::CUDAGuard guard(x_in.device());
    torch::Tensor x = x_in.contiguous();
    const int64_t dim = x.size(-1), rows = x.numel() / std::max<int64_t>(dim, 1);
    torch::Tensor y = torch::empty_like(x);
    torch::Tensor rstd = torch::empty({rows}, x.options().dtype(torch::kFloat32));
    check_cuda(kernels::rms_norm_fwd(x.data_ptr(), weight.contiguous().data_ptr(), y.data_ptr(), rstd.data_ptr<float>(),
                                     rows, dim, static_cast<float>(eps), kernel_dtype(x.scalar_type()),
                                     at::cuda::getCurrentCUDAStream()),
               "rms_norm_fwd");
    ctx->save_for_backward({x, weight, rstd});
    return y;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &x = saved[0], &weight = saved[1], &rstd = saved[2];
    c10::cuda::CUDAGuard guard(x.device());
    torch::Tensor dy = grads[0].contiguous();
    const int64_t dim = x.size(-1), rows = x.numel() / std::max<int64_t>(dim, 1);
    torch::Tensor dx = torch::empty_like(x);
    torch::Tensor partial = torch::empty({kernels::rms_norm_bwd_blocks(rows), dim}, x.options().dtype(torch::kFloat32));
    check_cuda(kernels::rms_norm_bwd(dy.data_ptr(), x.data_ptr(), weight.contiguous().data_ptr(), rstd.data_ptr<float>(),
                                     dx.data_ptr(), partial.data_ptr<float>(), rows, dim, kernel_dtype(x.scalar_type()),
                                     at::cuda::getCurrentCUDAStream()),
               "rms_norm_bwd");
    return {dx, partial.sum(0).to(weight.scalar_type()), torch::Tensor()};
  }
};

struct FusedSwiGLU : torch::autograd::Function<FusedSwiGLU> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& gate_in, const torch::Tensor& up_in) {
    c10::cuda::CUDAGuard guard(gate_in.device());
    torch::Tensor gate = gate_in.contiguous(), up = up_in.contiguous();
    torch::Tensor out = torch::empty_like(gate);
    check_cuda(kernels::swiglu_fwd(gate.data_ptr(), up.data_ptr(), out.data_ptr(), gate.numel(),
                                   kernel_dtype(gate.scalar_type()), at::cuda::getCurrentCUDAStream()),
               "swiglu_fwd");
    ctx->save_for_backward({gate, up});
    return out;
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &gate = saved[0], &up = saved[1];
    c10::cuda::CUDAGuard guard(gate.device());
    torch::Tensor dy = grads[0].contiguous();
    torch::Tensor dgate = torch::empty_like(gate), dup = torch::empty_like(up);
    check_cuda(kernels::swiglu_bwd(dy.data_ptr(), gate.data_ptr(), up.data_ptr(), dgate.data_ptr(), dup.data_ptr(),
                                   gate.numel(), kernel_dtype(gate.scalar_type()), at::cuda::getCurrentCUDAStream()),
               "swiglu_bwd");
    return {dgate, dup};
  }
};

kernels::RopeTensor rope_tensor(const torch::Tensor& in, torch::Tensor& out) {
  kernels::RopeTensor t;
  t.in = in.data_ptr();
  t.out = out.data_ptr();
  t.heads = in.size(1);
  t.stride_b = in.stride(0);
  t.stride_h = in.stride(1);
  t.stride_t = in.stride(2);
  return t;
}

// q and k rotated in one launch; backward rotates their gradients back in one launch.
struct FusedRope : torch::autograd::Function<FusedRope> {
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& cos_in, const torch::Tensor& sin_in) {
    c10::cuda::CUDAGuard guard(q.device());
    torch::Tensor cos = cos_in.to(torch::kFloat32).contiguous(), sin = sin_in.to(torch::kFloat32).contiguous();
    torch::Tensor q_out = torch::empty(q.sizes(), q.options()), k_out = torch::empty(k.sizes(), k.options());
    check_cuda(kernels::rope_apply(rope_tensor(q, q_out), rope_tensor(k, k_out), cos.data_ptr<float>(), sin.data_ptr<float>(),
                                   q.size(0), q.size(2), q.size(3), /*backward=*/false, kernel_dtype(q.scalar_type()),
                                   at::cuda::getCurrentCUDAStream()),
               "rope_fwd");
    ctx->save_for_backward({cos, sin});
    return {q_out, k_out};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &cos = saved[0], &sin = saved[1];
    // Autograd materialises the gradient of an output nobody used as zeros (materialize_grads
    // is on by default), so both are defined here.
    torch::Tensor dq = grads[0].contiguous(), dk = grads[1].contiguous();
    c10::cuda::CUDAGuard guard(dq.device());
    torch::Tensor dq_in = torch::empty_like(dq), dk_in = torch::empty_like(dk);
    check_cuda(kernels::rope_apply(rope_tensor(dq, dq_in), rope_tensor(dk, dk_in), cos.data_ptr<float>(),
                                   sin.data_ptr<float>(), dq.size(0), dq.size(2), dq.size(3), /*backward=*/true,
                                   kernel_dtype(dq.scalar_type()), at::cuda::getCurrentCUDAStream()),
               "rope_bwd");
    return {dq_in, dk_in, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight) {
  return x.is_cuda() && weight.is_cuda() && x.scalar_type() == weight.scalar_type() && fp32_or_bf16(x) &&
         x.size(-1) <= kernels::kRmsNormMaxDim;
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return FusedRmsNorm::apply(x, weight, eps);
}

bool swiglu_applies(const torch::Tensor& gate, const torch::Tensor& up) {
  return gate.is_cuda() && up.device() == gate.device() && gate.scalar_type() == up.scalar_type() && fp32_or_bf16(gate);
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) { return FusedSwiGLU::apply(gate, up); }

bool rope_applies(const torch::Tensor& q, const torch::Tensor& k) {
  return q.is_cuda() && k.device() == q.device() && q.scalar_type() == k.scalar_type() && fp32_or_bf16(q) &&
         q.stride(3) == 1 && k.stride(3) == 1 && q.size(3) % 2 == 0;
}

std::pair<torch::Tensor, torch::Tensor> rope(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& cos,
                                             const torch::Tensor& sin) {
  variable_list out = FusedRope::apply(q, k, cos, sin);
  return {out[0], out[1]};
}

}  // namespace dsalign::ops::fused
