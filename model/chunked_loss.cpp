#include "model/chunked_loss.h"

#ifdef DSALIGN_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/kernels/cross_entropy_grad.h"
#endif

namespace dsalign::ops {
namespace {

#ifdef DSALIGN_WITH_CUDA
torch::Tensor cross_entropy_grad_cuda(torch::Tensor& logits, const torch::Tensor& targets) {
  c10::cuda::CUDAGuard guard(logits.device());
  TORCH_CHECK(logits.is_contiguous() && (logits.scalar_type() == torch::kFloat32 || logits.scalar_type() == torch::kBFloat16),
              "cross_entropy_grad_: the kernel takes contiguous fp32 or bf16 logits, got ", logits.scalar_type());
  torch::Tensor t = targets.to(torch::kInt64).contiguous();
  torch::Tensor loss = torch::empty({logits.size(0)}, logits.options().dtype(torch::kFloat32));
  const cudaError_t status = kernels::cross_entropy_grad_inplace(
      logits.data_ptr(), t.data_ptr<int64_t>(), loss.data_ptr<float>(), logits.size(0), logits.size(1),
      logits.scalar_type() == torch::kBFloat16 ? kernels::DType::bf16 : kernels::DType::f32,
      at::cuda::getCurrentCUDAStream());
  TORCH_CHECK(status == cudaSuccess, "cross_entropy_grad_inplace: ", cudaGetErrorString(status));
  return loss;
}
#endif

// Loss and gradients computed in forward (see the header); backward scales them.
struct FusedLinearCrossEntropy : torch::autograd::Function<FusedLinearCrossEntropy> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& hidden,
                               const torch::Tensor& weight, const torch::Tensor& targets, int64_t chunk,
                               bool cuda_kernel) {
    const torch::ScalarType dtype = hidden.scalar_type();
    torch::Tensor w = weight.to(dtype);
    // Rows whose target is -100 get no loss and a zero gradient from the elementwise step (callers
    // pass only rows with targets where they can: no work is spent on the others).
    const torch::Tensor& h = hidden;
    const torch::Tensor& t = targets;
    const int64_t n = h.size(0);
    torch::Tensor grad_h = torch::empty_like(h);
    torch::Tensor grad_w = torch::zeros(weight.sizes(), weight.options().dtype(torch::kFloat32));
    torch::Tensor loss = torch::zeros({}, hidden.options().dtype(torch::kFloat32));
    for (int64_t start = 0; start < n; start += chunk) {
      const int64_t rows = std::min(chunk, n - start);
      torch::Tensor hc = h.narrow(0, start, rows);
      torch::Tensor logits = torch::mm(hc, w.t());                 // [rows, V], the compute dtype
      loss.add_(cross_entropy_grad_(logits, t.narrow(0, start, rows), cuda_kernel).sum());  // logits: now the gradient
      grad_h.narrow(0, start, rows).copy_(torch::mm(logits, w));
      // fp32 accumulation over the chunks (a bf16 chunk product is rounded once, then added).
      if (dtype == torch::kFloat32)
        grad_w.addmm_(logits.t(), hc);
      else
        grad_w.add_(torch::mm(logits.t(), hc).to(torch::kFloat32));
    }
    ctx->save_for_backward({grad_h, grad_w});
    ctx->saved_data["weight_dtype"] = static_cast<int64_t>(weight.scalar_type());
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    torch::Tensor g = grads[0].to(torch::kFloat32);
    const auto weight_dtype = static_cast<torch::ScalarType>(ctx->saved_data["weight_dtype"].toInt());
    // Scaled in fp32, rounded once (the incoming scale is 1 / tokens: rounding it to bf16 first
    // would bias every element).
    return {(saved[0].to(torch::kFloat32) * g).to(saved[0].scalar_type()), (saved[1] * g).to(weight_dtype),
            torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

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

int64_t default_chunk_rows(int64_t vocab) { return std::max<int64_t>(1, (int64_t{64} << 20) / std::max<int64_t>(vocab, 1)); }

torch::Tensor cross_entropy_grad_(torch::Tensor& logits, const torch::Tensor& targets, bool cuda_kernel) {
  TORCH_CHECK(logits.dim() == 2 && targets.dim() == 1 && targets.size(0) == logits.size(0),
              "cross_entropy_grad_: logits ", logits.sizes(), " and targets ", targets.sizes(), " do not fit [n, V], [n]");
#ifdef DSALIGN_WITH_CUDA
  if (cuda_kernel && logits.is_cuda()) return cross_entropy_grad_cuda(logits, targets);
#endif
  torch::Tensor p = logits.to(torch::kFloat32);  // the same tensor when logits are fp32
  torch::Tensor valid = targets != -100;
  torch::Tensor index = torch::where(valid, targets, torch::zeros_like(targets)).unsqueeze(1);
  torch::Tensor lse = torch::logsumexp(p, -1, /*keepdim=*/true);
  torch::Tensor loss = (lse - p.gather(1, index)).squeeze(1).mul_(valid);
  p.sub_(lse).exp_().scatter_add_(1, index, torch::full({p.size(0), 1}, -1.0f, p.options())).mul_(valid.unsqueeze(1));
  if (!p.is_same(logits)) logits.copy_(p);
  return loss;
}

torch::Tensor fused_linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                             const torch::Tensor& targets, int64_t chunk_rows, bool cuda_kernel) {
  const int64_t chunk = chunk_rows > 0 ? chunk_rows : default_chunk_rows(weight.size(0));
  const bool wants_grad = torch::GradMode::is_enabled() && (hidden.requires_grad() || weight.requires_grad());
  if (wants_grad) return FusedLinearCrossEntropy::apply(hidden, weight, targets, chunk, cuda_kernel);
  // Validation and scoring: the loss alone, no gradient work.
  torch::Tensor w = weight.to(hidden.scalar_type());
  torch::Tensor loss = torch::zeros({}, hidden.options().dtype(torch::kFloat32));
  for (int64_t start = 0; start < hidden.size(0); start += chunk) {
    const int64_t rows = std::min(chunk, hidden.size(0) - start);
    torch::Tensor logits = torch::mm(hidden.narrow(0, start, rows), w.t()).to(torch::kFloat32);
    torch::Tensor t = targets.narrow(0, start, rows), valid = t != -100;
    torch::Tensor index = torch::where(valid, t, torch::zeros_like(t)).unsqueeze(1);
    loss.add_(((torch::logsumexp(logits, -1) - logits.gather(1, index).squeeze(1)) * valid).sum());
  }
  return loss;
}

torch::Tensor chunked_linear_log_probs(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, int64_t chunk_rows) {
  return ChunkedLinearLogProbs::apply(hidden, weight, targets, chunk_rows > 0 ? chunk_rows : default_chunk_rows(weight.size(0)));
}

}  // namespace dsalign::ops
