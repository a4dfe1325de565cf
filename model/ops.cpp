#include "model/ops.h"

#include "util/error.h"

#ifdef DSALIGN_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/kernels/rms_norm.h"
#endif

namespace dsalign::ops {

namespace reference {

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  torch::Tensor x32 = x.to(torch::kFloat32);
  torch::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  torch::Tensor normed = x32 * torch::rsqrt(variance + eps);
  return weight * normed.to(x.scalar_type());
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up) {
  return torch::silu(gate) * up;
}

torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  torch::Tensor x1 = x.narrow(-1, 0, half);
  torch::Tensor x2 = x.narrow(-1, half, half);
  torch::Tensor rotated = torch::cat({-x2, x1}, -1);
  torch::Tensor c = cos.unsqueeze(1);  // broadcast over heads
  torch::Tensor s = sin.unsqueeze(1);
  return x * c + rotated * s;
}

torch::Tensor cross_entropy_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
      logits.to(torch::kFloat32), targets,
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum).ignore_index(kIgnoreIndex));
}

torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets) {
  return cross_entropy_sum(torch::nn::functional::linear(hidden, weight), targets);
}

torch::Tensor linear_log_probs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets) {
  torch::Tensor logits = torch::nn::functional::linear(hidden, weight).to(torch::kFloat32);
  return torch::log_softmax(logits, -1).gather(1, targets.unsqueeze(1)).squeeze(1);
}

}  // namespace reference

namespace {

void check_rms_norm(const torch::Tensor& x, const torch::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 1 && x.size(-1) == weight.size(0), "rms_norm: weight ", weight.sizes(),
              " does not match the last dimension of x ", x.sizes());
}

#ifdef DSALIGN_WITH_CUDA

void check_cuda(cudaError_t status, const char* what) {
  TORCH_CHECK(status == cudaSuccess, what, ": ", cudaGetErrorString(status));
}

kernels::DType kernel_dtype(torch::ScalarType t) {
  return t == torch::kBFloat16 ? kernels::DType::bf16 : kernels::DType::f32;
}

// The fused kernel takes x and weight of one dtype, fp32 or bf16, contiguous rows, on a GPU.
bool fused_rms_norm_applies(const torch::Tensor& x, const torch::Tensor& weight) {
  return x.is_cuda() && weight.is_cuda() && x.scalar_type() == weight.scalar_type() &&
         (x.scalar_type() == torch::kFloat32 || x.scalar_type() == torch::kBFloat16) &&
         x.size(-1) <= kernels::kRmsNormMaxDim;
}

struct FusedRmsNorm : torch::autograd::Function<FusedRmsNorm> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& weight, double eps) {
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

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
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

#endif

// Rows per chunk: about 256 MiB of fp32 logits.
int64_t default_chunk_rows(int64_t vocab) { return std::max<int64_t>(1, (int64_t{64} << 20) / std::max<int64_t>(vocab, 1)); }

// log p(target) = logit[target] - logsumexp(logits), chunk by chunk. Backward recomputes each
// chunk's logits: d/dlogits = onehot(target) - softmax, scaled by the incoming gradient. Matmuls
// run in hidden's dtype (the compute dtype under autocast); softmax and accumulation in fp32.
struct ChunkedLinearLogProbs : torch::autograd::Function<ChunkedLinearLogProbs> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& weight, const torch::Tensor& targets, int64_t chunk) {
    torch::Tensor w = weight.to(hidden.scalar_type());
    const int64_t N = hidden.size(0);
    ctx->saved_data["chunk"] = chunk;
    torch::Tensor out = torch::empty({N}, hidden.options().dtype(torch::kFloat32));
    torch::Tensor lse = torch::empty({N}, hidden.options().dtype(torch::kFloat32));
    for (int64_t start = 0; start < N; start += chunk) {
      const int64_t n = std::min(chunk, N - start);
      torch::Tensor logits = torch::mm(hidden.narrow(0, start, n), w.t()).to(torch::kFloat32);
      torch::Tensor l = torch::logsumexp(logits, -1);
      lse.narrow(0, start, n).copy_(l);
      out.narrow(0, start, n).copy_(logits.gather(1, targets.narrow(0, start, n).unsqueeze(1)).squeeze(1) - l);
    }
    ctx->save_for_backward({hidden, weight, targets, lse});
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &hidden = saved[0], &weight = saved[1], &targets = saved[2], &lse = saved[3];
    torch::Tensor grad_out = grads[0].to(torch::kFloat32);
    torch::Tensor w = weight.to(hidden.scalar_type());
    const int64_t N = hidden.size(0), chunk = ctx->saved_data["chunk"].toInt();
    torch::Tensor grad_hidden = torch::empty_like(hidden);
    torch::Tensor grad_weight = torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32));
    for (int64_t start = 0; start < N; start += chunk) {
      const int64_t n = std::min(chunk, N - start);
      torch::Tensor h = hidden.narrow(0, start, n);
      torch::Tensor logits = torch::mm(h, w.t()).to(torch::kFloat32);
      torch::Tensor g = grad_out.narrow(0, start, n).unsqueeze(1);
      torch::Tensor grad_logits = torch::exp(logits - lse.narrow(0, start, n).unsqueeze(1)).mul_(-g);
      grad_logits.scatter_add_(1, targets.narrow(0, start, n).unsqueeze(1), g);
      torch::Tensor gl = grad_logits.to(hidden.scalar_type());
      grad_hidden.narrow(0, start, n).copy_(torch::mm(gl, w));
      grad_weight.add_(torch::mm(gl.t(), h).to(torch::kFloat32));
    }
    return {grad_hidden, grad_weight.to(weight.scalar_type()), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor linear_log_probs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                               Backend backend, int64_t chunk_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1) && targets.dim() == 1 &&
                  targets.size(0) == hidden.size(0),
              "linear_log_probs: hidden ", hidden.sizes(), ", weight ", weight.sizes(), ", targets ", targets.sizes(),
              " do not fit [N, D], [V, D], [N]");
  return ChunkedLinearLogProbs::apply(hidden, weight, targets, chunk_rows > 0 ? chunk_rows : default_chunk_rows(weight.size(0)));
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, Backend backend) {
  check_rms_norm(x, weight);
#ifdef DSALIGN_WITH_CUDA
  if (backend == Backend::kernels && fused_rms_norm_applies(x, weight)) return FusedRmsNorm::apply(x, weight, eps);
#endif
  return reference::rms_norm(x, weight, eps);
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up, Backend backend) {
  TORCH_CHECK(gate.sizes() == up.sizes(), "swiglu: gate ", gate.sizes(), " and up ", up.sizes(), " differ");
  return reference::swiglu(gate, up);
}

torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, Backend backend) {
  TORCH_CHECK(x.dim() == 4 && cos.dim() == 3 && x.size(0) == cos.size(0) && x.size(2) == cos.size(1) &&
                  x.size(3) == cos.size(2) && cos.sizes() == sin.sizes(),
              "rope: x ", x.sizes(), " needs cos/sin of [B, T, hd], got ", cos.sizes(), " and ", sin.sizes());
  return reference::rope(x, cos, sin);
}

torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, Backend backend) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1) &&
                  targets.dim() == 1 && targets.size(0) == hidden.size(0),
              "linear_cross_entropy_sum: hidden ", hidden.sizes(), ", weight ", weight.sizes(), ", targets ",
              targets.sizes(), " do not fit [N, D], [V, D], [N]");
  return reference::linear_cross_entropy_sum(hidden, weight, targets);
}

bool kernels_compiled() {
#ifdef DSALIGN_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace dsalign::ops
