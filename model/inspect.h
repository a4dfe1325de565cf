// Arithmetic about a model shape: parameter counts, FLOPs per token, training memory.
// Pure functions of ModelConfig, used by `dsalign inspect` and the benchmarks.
#pragma once
#include <string>

#include "model/config.h"

namespace dsalign {

struct ParameterCounts {
  int64_t embedding = 0;      // embed_tokens
  int64_t lm_head = 0;        // 0 when tied
  int64_t per_layer = 0;
  int64_t final_norm = 0;
  int64_t total = 0;          // unique parameters
  int64_t non_embedding = 0;  // total - embedding (lm_head included)
};
ParameterCounts count_parameters(const ModelConfig& config);

// DESIGN.md's training FLOPs per token for MFU: 6 x (matmul parameters incl. lm_head) +
// 6 x n_layer x d_model x seq_len (causal attention, forward + backward).
double training_flops_per_token(const ModelConfig& config, int64_t seq_len);

// The DeepSeek LLM paper's M (Eq. 2), non-embedding FLOPs per token:
// 72 n_layer d_model^2 + 12 n_layer d_model l_seq.
double paper_flops_per_token(const ModelConfig& config, int64_t seq_len);

// Bytes full fine-tuning with AdamW holds besides activations.
struct TrainingMemory {
  double weights = 0, gradients = 0, optimizer = 0;
  double total() const { return weights + gradients + optimizer; }
};
// master weights and gradients in `master_bytes` per element; AdamW's two moments in fp32.
TrainingMemory training_memory(const ModelConfig& config, int master_bytes);

std::string inspect_report(const ModelConfig& config, int64_t seq_len);

}  // namespace dsalign
