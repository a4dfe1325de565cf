// The ops:: seam. The decoder calls only these for RMSNorm, SwiGLU, RoPE and the loss. Each op
// has a plain-LibTorch reference in ops::reference (the numerics of transformers' Llama code);
// fused implementations (CUDA kernels in model/kernels/ through model/fused_ops, the chunked loss
// of model/chunked_loss) are chosen here, per call, when `Backend::kernels` is asked for and the
// tensors suit them. Tests compare the two on random inputs.
#pragma once
#include <torch/torch.h>

#include <utility>

namespace dsalign::ops {

enum class Backend { reference, kernels };

// The implementation each op runs: model.kernels resolved for a device (model/kernel_choice).
// adamw is the optimizer's (train/adamw: at::_fused_adamw_ or the reference update).
struct Kernels {
  Backend rms_norm = Backend::reference, swiglu = Backend::reference, rope = Backend::reference,
          cross_entropy = Backend::reference, attention = Backend::reference, adamw = Backend::reference;
};

// x: [..., D], weight: [D] -> [..., D]. Statistics in fp32, normalised x cast back to x's dtype,
// then scaled by weight (transformers' LlamaRMSNorm: weight * x_hat.to(input_dtype)).
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps, Backend backend);

// gate, up: [..., F] -> silu(gate) * up.
torch::Tensor swiglu(const torch::Tensor& gate, const torch::Tensor& up, Backend backend);

// x: [B, H, T, hd]; cos, sin: [B, T, hd] -> rotate-half rotary embedding of x.
torch::Tensor rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin, Backend backend);
// The same for q [B, H, T, hd] and k [B, H_kv, T, hd]; the fused kernel rotates both in one launch
// (reading them through their strides: views of the projections need no copy).
std::pair<torch::Tensor, torch::Tensor> rope_qk(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& cos,
                                                const torch::Tensor& sin, Backend backend);

// hidden: [N, D], weight: [V, D], targets: [N] int64 with -100 = ignore -> fp32 scalar: the sum of
// -log softmax(hidden @ weight^T)[target] over non-ignored rows. Backend::kernels: the chunked
// fused version (model/chunked_loss: never the [N, V] logits, gradient computed in forward; on a
// GPU its elementwise step is a CUDA kernel); chunk_rows as there (0: about 256 MiB of fp32
// logits per chunk).
torch::Tensor linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, Backend backend, int64_t chunk_rows = 0);

// hidden: [N, D], weight: [V, D], targets: [N] int64 -> fp32 [N]: log softmax(hidden @ weight^T)[target]
// (the per-token log-probs DPO sums per sequence). Computed in row chunks that recompute their
// logits in backward, so at most one chunk of [rows, V] logits is alive at any time instead of N.
// chunk_rows: rows per chunk; 0 = about 256 MiB of fp32 logits per chunk.
torch::Tensor linear_log_probs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                               Backend backend, int64_t chunk_rows = 0);

// Varlen flash attention (CUDA, bf16/fp16): q [total, H, hd], k and v [total, H_kv, hd] with H a
// multiple of H_kv, the documents delimited by cu_seqlens ([documents + 1] int32 on the device)
// -> [total, H, hd], each token attending causally within its document. Differentiable
// (at::_flash_attention_forward's autograd).
torch::Tensor varlen_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& cu_seqlens, int64_t max_seqlen, double scale);

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
