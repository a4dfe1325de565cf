// The loss head without full logits: the [N, V] logits of a micro-batch (8192 rows of a 102400
// vocabulary are 3.4 GB in fp32, and autograd keeps several such tensors) are made one chunk of
// rows at a time. ops:: (model/ops.h) chooses these or the references; tests compare the two.
#pragma once
#include <torch/torch.h>

namespace dsalign::ops {

// Rows per chunk when the caller gives 0: about 64 Mi logits (256 MiB in fp32).
int64_t default_chunk_rows(int64_t vocab);

// SFT's loss, fused: sum over rows whose target is not -100 of -log softmax(hidden @ weight^T)[target],
// as an fp32 scalar (rows with -100 are computed and contribute nothing: pass only the others
// where possible). The forward computes the gradient too, chunk by chunk (logits, then in place
// softmax minus one-hot: cross_entropy_grad_), so no chunk outlives its iteration; it keeps the
// hidden gradient ([N, D], hidden's dtype) and the weight gradient (accumulated in fp32), and
// backward only scales them by the incoming gradient. Matmuls run in hidden's dtype (the compute
// dtype); softmax and the loss in fp32.
torch::Tensor fused_linear_cross_entropy_sum(const torch::Tensor& hidden, const torch::Tensor& weight,
                                             const torch::Tensor& targets, int64_t chunk_rows, bool cuda_kernel);

// DPO's per-token log-probs: log softmax(hidden @ weight^T)[target] as fp32 [N], chunk by chunk;
// backward recomputes each chunk's logits (the gradient needs the DPO loss's weights, known only
// after every sequence is scored).
torch::Tensor chunked_linear_log_probs(const torch::Tensor& hidden, const torch::Tensor& weight,
                                       const torch::Tensor& targets, int64_t chunk_rows);

// The elementwise step, in place: logits [n, V] (fp32 or bf16) become softmax - onehot(target);
// returns the rows' losses lse - logit[target] in fp32. A row whose target is -100 gets loss 0
// and a zero gradient; on the GPU a target outside [0, V) otherwise gives a NaN loss (which the
// trainer's non-finite check stops on) and a zero gradient. With
// cuda_kernel (and logits on a GPU) the fused kernel (model/kernels/cross_entropy_grad.cu),
// otherwise LibTorch ops through an fp32 copy.
torch::Tensor cross_entropy_grad_(torch::Tensor& logits, const torch::Tensor& targets, bool cuda_kernel);

}  // namespace dsalign::ops
