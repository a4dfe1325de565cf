#include "model/ops.h"

#include "model/chunked_loss.h"
#include "util/error.h"

#ifdef DSALIGN_WITH_CUDA
#include "model/fused_ops.h"
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

void check_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  TORCH_CHECK(x.dim() == 4 && cos.dim() == 3 && x.size(0) == cos.size(0) && x.size(2) == cos.size(1) &&
                  x.size(3) == cos.size(2) && cos.sizes() == sin.sizes(),
              "rope: x ", x.sizes(), " needs cos/sin of [B, T, hd], got ", cos.sizes(), " and ", sin.sizes());
}

void check_rms_norm(const torch::Tensor& x, const torch::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 1 && x.size(-1) == weight.size(0), "rms_norm: weight ", weight.sizes(),
              " does not match the last dimension of x ", x.sizes());
}

}  // namespace

torch::Tensor linear_log_probs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                               Backend backend, int64_t chunk_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1) && targets.dim() == 1 &&
                  targets.size(0) == hidden.size(0),
              "linear_log_probs: hidden ", hidden.sizes(), ", weight ", weight.sizes(), ", targets ", targets.sizes(),
              " do not fit [N, D], [V, D], [N]");
  return chunked_linear_log_probs(hidden, weight, targets, chunk_rows);
}

torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, Backend backend) {
  check_rms_norm(x, weight);
#ifdef DSALIGN_WITH_CUDA
  if (backend == Backend::kernels && fused::rms_norm_applies(x, weight)) return fused::rms_norm(x, weight, eps);
#endif
  return reference::rms_norm(x, weight, eps);
}

torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up, Backend backend) {
  TORCH_CHECK(gate.sizes() == up.sizes(), "swiglu: gate ", gate.sizes(), " and up ", up.sizes(), " differ");
#ifdef DSALIGN_WITH_CUDA
  if (backend == Backend::kernels && fused::swiglu_applies(gate, up)) return fused::swiglu(gate, up);
#endif
  return reference::swiglu(gate, up);
}

torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, Backend backend) {
  check_rope(x, cos, sin);
  return reference::rope(x, cos, sin);
}

std::pair<torch::Tensor, torch::Tensor> rope_qk(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& cos,
                                                const torch::Tensor& sin, Backend backend) {
#ifdef DSALIGN_WITH_CUDA
  if (backend == Backend::kernels && fused::rope_applies(q, k)) {
    check_rope(q, cos, sin);
    check_rope(k, cos, sin);
    return fused::rope(q, k, cos, sin);
  }
#endif
  return {rope(q, cos, sin, backend), rope(k, cos, sin, backend)};
}

torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, Backend backend, int64_t chunk_rows) {
  TORCH_CHECK(hidden.dim() == 2 && weight.dim() == 2 && hidden.size(1) == weight.size(1) &&
                  targets.dim() == 1 && targets.size(0) == hidden.size(0),
              "linear_cross_entropy_sum: hidden ", hidden.sizes(), ", weight ", weight.sizes(), ", targets ",
              targets.sizes(), " do not fit [N, D], [V, D], [N]");
  if (backend == Backend::kernels) return fused_linear_cross_entropy_sum(hidden, weight, targets, chunk_rows, true);
  return reference::linear_cross_entropy_sum(hidden, weight, targets);
}

torch::Tensor varlen_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& cu_seqlens, int64_t max_seqlen, double scale) {
  TORCH_CHECK(q.is_cuda() && (q.scalar_type() == torch::kBFloat16 || q.scalar_type() == torch::kFloat16),
              "varlen_attention: flash attention takes bf16 or fp16 tensors on a GPU, got ", q.scalar_type(), " on ",
              q.device());
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.sizes() == k.sizes() && q.size(0) == k.size(0) && q.size(2) == k.size(2) &&
                  q.size(1) % k.size(1) == 0,
              "varlen_attention: q ", q.sizes(), ", k ", k.sizes(), ", v ", v.sizes(),
              " do not fit [total, H, hd], [total, H_kv, hd] with H a multiple of H_kv");
  TORCH_CHECK(cu_seqlens.scalar_type() == torch::kInt32 && cu_seqlens.device() == q.device(),
              "varlen_attention: cu_seqlens must be int32 on ", q.device());
  // Training: no dropout, no seqused_k or alibi (their backward is not supported).
  return std::get<0>(at::_flash_attention_forward(q, k, v, cu_seqlens, cu_seqlens, max_seqlen, max_seqlen, 0.0,
                                                  /*is_causal=*/true, /*return_debug_mask=*/false, scale));
}

bool kernels_compiled() {
#ifdef DSALIGN_WITH_CUDA
  return true;
#else
  return false;
#endif
}

}  // namespace dsalign::ops
