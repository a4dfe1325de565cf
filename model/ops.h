// The ops:: seam. The decoder calls only these for RMSNorm, SwiGLU, RoPE and the loss. Each op
// has a plain-LibTorch reference in ops::reference (the numerics of transformers' Llama code);
// fused CUDA kernels (model/kernels/) are chosen here, per call, when `Backend::kernels` is asked
// for and the tensors live on a GPU. Tests compare the two on random inputs.
#pragma once
#include <torch/torch.h>

namespace dsalign::ops {

enum class Backend { reference, kernels };

// x: [..., D], weight: [D] -> [..., D]. Statistics in fp32, normalised x cast back to x's dtype,
// then scaled by weight (transformers' LlamaRMSNorm: weight * x_hat.to(input_dtype)).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, Backend backend);

// gate, up: [..., F] -> silu(gate) * up.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up, Backend backend);

// x: [B, H, T, hd]; cos, sin: [B, T, hd] -> rotate-half rotary embedding of x.
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, Backend backend);

// hidden: [N, D], weight: [V, D], targets: [N] int64 with -100 = ignore -> fp32 scalar: the sum of
// -log softmax(hidden @ weight^T)[target] over non-ignored rows. One op so that a fused
// linear-cross-entropy kernel never materialises the [N, V] logits.
torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, Backend backend);

// hidden: [N, D], weight: [V, D], targets: [N] int64 -> fp32 [N]: log softmax(hidden @ weight^T)[target]
// (the per-token log-probs DPO sums per sequence). Computed in row chunks that recompute their
// logits in backward, so at most one chunk of [rows, V] logits is alive at any time instead of N.
// chunk_rows: rows per chunk; 0 = about 256 MiB of fp32 logits per chunk.
torch::Tensor linear_log_probs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                               Backend backend, int64_t chunk_rows = 0);

constexpr int64_t kIgnoreIndex = -100;

namespace reference {
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps);
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up);
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);
torch::Tensor cross_entropy_sum(const torch::Tensor& logits, const torch::Tensor& targets);
torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets);
// All [N, V] logits at once, in fp32, through autograd.
torch::Tensor linear_log_probs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets);
}  // namespace reference

// Whether fused kernels were compiled into this build.
bool kernels_compiled();

}  // namespace dsalign::ops
