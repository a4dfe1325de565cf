// zero3 (FSDP-style) parameter sharding: each rank keeps only its rows (dim 0, dist/shard_plan's
// row_shard) of every parameter, in the parameter dtype (fp32 master weights for training, the
// compute dtype for a frozen reference). The model's own parameters become full-size tensors in
// the compute dtype whose storage is allocated only while their unit is gathered:
//   forward   all-gather the unit's rows (one collective per unit), run it, release the storage
//             (unless reshard_after_forward is false, or this is the head, whose backward follows
//             at once). Releasing resizes the storage itself to 0 bytes, so views that autograd
//             saved stay valid objects and see the data again when it is re-gathered.
//   backward  re-gather, back-propagate through the unit (recomputing it first under activation
//             checkpointing), reduce-scatter its gradients in fp32 and add this rank's rows to the
//             shard's gradient, release the storage.
// Each unit is one autograd node whose backward does all of that explicitly, in the same order on
// every rank. With prefetch, the next unit's all-gather is started before this one computes and
// waited for when it is needed.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "dist/dist_config.h"
#include "dist/shard_plan.h"
#include "model/decoder.h"
#include "model/units.h"

namespace dsalign {

struct ShardedUnitsOptions {
  bool reshard_after_forward = true;
  bool prefetch = true;
};
inline ShardedUnitsOptions sharded_units_options(const DistConfig& c) {
  return {c.reshard_after_forward.value_or(true), c.prefetch};
}

class ShardedUnits : public UnitRunner, public std::enable_shared_from_this<ShardedUnits> {
 public:
  // Takes `model`'s parameters apart and installs itself as the model's unit runner: this rank's
  // rows are kept (copied when the model was loaded; left for load_weights() to fill when it was
  // built with DecoderOptions::unallocated), the rest freed. A parameter that does not require a
  // gradient gets none (a frozen reference).
  static std::shared_ptr<ShardedUnits> shard(const Dist& dist, CausalLM& model, const ShardedUnitsOptions& options);

  torch::Tensor run(size_t unit, const UnitFn& fn, const torch::Tensor& x, bool recompute) override;
  int64_t max_over_ranks(int64_t local) override;
  LoadTarget load_target(const std::string& name) override;

  // Per parameter, in named_parameters() order.
  const std::vector<std::string>& names() const { return names_; }
  const std::vector<RowShard>& row_shards() const { return row_shards_; }
  std::vector<torch::Tensor>& weights() { return shard_weights_; }    // this rank's rows, parameter dtype
  std::vector<torch::Tensor>& gradients() { return shard_grads_; }    // this rank's rows, fp32, summed over ranks
  const std::vector<torch::Tensor>& full_parameters() const { return full_; }  // the model's (storage freed between uses)

  // The whole of parameter i, gathered from every rank's rows, in the parameter dtype (on every
  // rank: a collective). For checkpoints and export, one tensor at a time.
  torch::Tensor gather_whole(size_t i);

  // Bytes given to and received from collectives since the last reset (what a step moved).
  struct Traffic {
    int64_t gathered = 0;  // all-gather outputs
    int64_t reduced = 0;   // reduce-scatter inputs
    int64_t peak_resident = 0;  // the most bytes of gathered parameter storage allocated at once
  };
  Traffic traffic() const { return traffic_; }
  void reset_traffic() { traffic_ = {0, 0, resident_}; }

  // Bytes of gathered parameter storage allocated now, summed from the storages themselves (0
  // between steps: everything is released).
  int64_t gathered_bytes_resident() const;

  // Internal to the autograd node of a unit.
  void gather(size_t unit);
  void release(size_t unit);
  void reduce_gradients(size_t unit, const std::vector<torch::Tensor>& grads);
  const std::vector<size_t>& unit_parameters(size_t unit) const { return units_.at(unit); }
  bool reshard_after_forward() const { return options_.reshard_after_forward; }
  size_t head() const { return units_.size() - 1; }
  void prefetch(size_t unit);

  ShardedUnits(const Dist& dist, const ShardedUnitsOptions& options) : dist_(dist), options_(options) {}

 private:
  struct Pending {
    size_t unit;
    torch::Tensor input, output;  // both kept alive until the collective finishes
    std::unique_ptr<Dist::Async> work;
  };
  torch::Tensor unit_input(size_t unit) const;
  void scatter_gathered(size_t unit, const torch::Tensor& output);

  const Dist& dist_;
  ShardedUnitsOptions options_;
  torch::ScalarType gather_dtype_ = torch::kFloat32;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> full_, shard_weights_, shard_grads_;
  std::vector<RowShard> row_shards_;
  std::vector<int64_t> row_elements_;
  std::vector<std::vector<size_t>> units_;  // parameter indices per unit
  std::vector<bool> gathered_;
  std::optional<Pending> pending_;  // a prefetched unit's all-gather in flight
  Traffic traffic_;
  int64_t resident_ = 0;  // bytes of gathered storage allocated (kept by allocate / release)
};

// The model of checkpoint `dir` under zero3: built with no parameter storage, sharded, and each
// rank's rows read from the memory-mapped weight files (host memory near the shard plus the
// pages of one tensor's rows). `frozen`: no gradients (a DPO reference).
CausalLM load_sharded_model(const Dist& dist, const std::filesystem::path& dir, DecoderOptions options,
                            const ShardedUnitsOptions& units, bool frozen = false);

}  // namespace dsalign
