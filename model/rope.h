// Rotary position embedding tables for the decoder: inverse frequencies per the config's
// rope scaling (none, linear, dynamic NTK, llama3), and cos/sin for given position ids.
#pragma once
#include <torch/torch.h>

#include "model/config.h"

namespace dsalign {

// [head_dim / 2] fp32 inverse frequencies. `seq_len` matters only for dynamic scaling: past
// max_position_embeddings the base grows (transformers' dynamic NTK), computed from this call's
// positions alone rather than from a cache of earlier calls.
torch::Tensor rope_inv_freq(const ModelConfig& config, int64_t seq_len);

struct RopeTables {
  torch::Tensor cos;  // [B, T, head_dim]
  torch::Tensor sin;
};

// position_ids: [B, T] int64 -> tables in `dtype`, on the positions' device. Products are taken
// in fp32 like transformers, then cast.
RopeTables rope_tables(const ModelConfig& config, const torch::Tensor& position_ids, torch::ScalarType dtype);

}  // namespace dsalign
