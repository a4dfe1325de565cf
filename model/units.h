// The seam where parameter sharding (dist/sharded_units) meets the decoder. The decoder runs each
// of its units (the embedding, each decoder layer, the final norm with lm_head) as one call of a
// function of one tensor; with a UnitRunner set, the runner decides what happens around that call
// (gather the unit's parameters, free them, re-gather them for backward, reduce its gradients),
// so the decoder itself knows nothing of ranks.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>

namespace dsalign {

// x -> y for one unit: input ids -> hidden states (embedding), hidden -> hidden (a layer),
// hidden -> whatever the caller computes from the normed hidden states and lm_head (the head).
// It enters autocast itself: a runner may call it again in backward, outside the forward's scope.
using UnitFn = std::function<torch::Tensor(const torch::Tensor&)>;

class UnitRunner {
 public:
  virtual ~UnitRunner() = default;
  // y = fn(x) with unit's parameters in place. `recompute`: keep only x and run fn again in
  // backward (activation checkpointing).
  virtual torch::Tensor run(size_t unit, const UnitFn& fn, const torch::Tensor& x, bool recompute) = 0;
  // The largest `local` over every rank the runner spans: loops that run units (validation,
  // generation) take that many turns on every rank, so every rank gathers the same units.
  virtual int64_t max_over_ranks(int64_t local) = 0;
  // Where loading puts checkpoint tensor `name` when the runner holds the parameters: rows
  // [begin, begin + into.size(0)) of its dim 0 are copied into `into` (the rest is never read).
  struct LoadTarget {
    int64_t begin = 0;
    torch::Tensor into;
  };
  virtual LoadTarget load_target(const std::string& name) = 0;
};

// Units: 0 the embedding, 1 + i decoder layer i, num_layers + 1 the final norm with lm_head.
inline size_t embedding_unit() { return 0; }
inline size_t layer_unit(int64_t layer) { return static_cast<size_t>(layer) + 1; }
inline size_t head_unit(int64_t num_layers) { return static_cast<size_t>(num_layers) + 1; }
inline size_t unit_count(int64_t num_layers) { return static_cast<size_t>(num_layers) + 2; }

// The unit a checkpoint parameter name belongs to ("model.layers.3.mlp.up_proj.weight" -> 4).
size_t unit_of_parameter(const std::string& name, int64_t num_layers);

}  // namespace dsalign
