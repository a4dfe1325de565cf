// One optimizer step across the ranks of a run, per strategy (the `dist` section):
//   none   one process: AdamW on the parameters.
//   ddp    the step's gradients summed over the ranks (all-reduce in fp32 buckets); AdamW on the
//          parameters, identical on every rank.
//   zero1  every parameter's rows (dim 0) split into world_size ranges (dist/shard_plan's
//          row_shard). After the step's micro-batches the gradients are reduce-scattered, so rank
//          r holds the summed gradient of its rows only; AdamW runs on a view of those rows (its
//          moments cover 1/N of the model); the updated rows are then all-gathered into every
//          rank's copy of the parameters.
//   zero2  as zero1, but each micro-batch's gradients are reduce-scattered into the shard's
//          accumulated gradient at once and the full gradients freed: no full-size gradient
//          outlives a micro-batch.
//   zero3  as zero2, and the parameters too: each rank keeps only its rows (fp32 master weights),
//          and each unit of the model is gathered around its use (dist/sharded_units). AdamW
//          updates the rows in place; nothing is gathered after the step (the next forward does).
// Every rank divides its loss sums by the step's global loss count before backward, so the sum
// over ranks is one process's gradient on the global batch. Clipping uses the norm over all
// shards. Checkpoints hold the full AdamW state (gathered row range by row range), the same file
// a one-process run writes, so a run resumes on any world size and strategy.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <vector>

#include "dist/dist.h"
#include "dist/dist_config.h"
#include "dist/shard_plan.h"
#include "dist/sharded_units.h"
#include "model/decoder.h"
#include "train/train_config.h"
#include "train/training_checkpoint.h"

namespace dsalign {

class DataParallel {
 public:
  // zero3 uses the model's ShardedUnits (load_sharded_model), or takes a whole model apart with
  // `zero3` options.
  DataParallel(const Dist& dist, ShardStrategy strategy, CausalLM& model, const TrainConfig& train,
               const ShardedUnitsOptions& zero3 = {});

  void begin_step();          // resets the step's traffic counters

  void after_micro_batch();   // zero2: reduce-scatter this micro-batch's gradients now
  void finish_gradients();    // the step's gradients, summed over the ranks, where AdamW needs them
  double clip_grad_norm(double max_norm);  // the global norm; scales the gradients when > max_norm > 0
  void step(double lr);       // AdamW (on this rank's rows under zero1/2), then the rows all-gathered
  void zero_grad();

  // The full AdamW state as one process saves it ("optimizer.<name>.exp_avg" ...), host tensors in
  // `staging` (landed by staging.finish()); a collective (every rank calls it), filled on rank 0 only.
  NamedTensors optimizer_state(HostStaging& staging);
  // Restores a checkpoint's AdamW state (either layout, any world size), reading this rank's rows.
  void load_optimizer_state(const CheckpointReader& checkpoint);

  ShardStrategy strategy() const { return strategy_; }
  // This rank's part of a multi-rank checkpoint (train/sharded_checkpoint.h): its rows (row_shard
  // over the ranks, whatever the strategy) of every weight and AdamW moment as host copies, the
  // AdamW steps, and for shard_layout.json every tensor's shape and each rank's rows. No
  // collective: each rank writes what it holds. The copies are `staging`'s buffers, landed on return.
  struct CheckpointPart {
    NamedTensors weights, optimizer;
    nlohmann::json layout;
  };
  CheckpointPart checkpoint_part(HostStaging& staging);

  // The weights as a one-process run saves them (checkpoint names, master dtype): a collective
  // under zero3 (each tensor gathered in turn), filled on rank 0 only; otherwise the model's own.
  NamedTensors model_weights(CausalLM& model);

  // Bytes the last step gave to reductions (all-reduce / reduce-scatter inputs) and received from
  // all-gathers, counted at the collectives.
  struct Traffic {
    int64_t reduced = 0, gathered = 0;
    // zero3: the most bytes of gathered parameters allocated at once during the step, and what
    // was still allocated after it (0: every unit released).
    int64_t gathered_peak = 0, gathered_after = 0;
  };
  Traffic last_step_traffic() const { return last_traffic_; }
  // Bytes this rank holds of parameters, gradients (after finish_gradients) and AdamW moments.
  struct Held {
    int64_t weights = 0, gradients = 0, optimizer = 0;
  };
  Held held_bytes() const;

 private:
  // AdamW state (and the step's summed gradient) kept for this rank's rows only.
  bool sharded() const { return strategy_ != ShardStrategy::none && strategy_ != ShardStrategy::ddp; }
  // Full parameters on every rank whose rows are gathered after the step (zero1, zero2).
  bool replicated_rows() const { return strategy_ == ShardStrategy::zero1 || strategy_ == ShardStrategy::zero2; }
  void reduce_scatter_into_shards();
  void all_gather_rows();

  const Dist& dist_;
  ShardStrategy strategy_;
  std::vector<std::string> names_;
  std::vector<torch::Tensor> params_;   // the model's, full size on every rank
  std::vector<RowShard> shards_;        // this rank's rows of each
  std::vector<torch::Tensor> owned_;    // what AdamW updates: params_ (none/ddp) or views of the owned rows
  std::vector<torch::Tensor> shard_grads_;  // zero1/2: the summed gradient of the owned rows
  std::vector<std::pair<size_t, size_t>> buckets_;  // [first, last) parameter indices per collective
  std::unique_ptr<AdamW> adamw_;
  std::shared_ptr<ShardedUnits> units_;  // zero3
  Traffic traffic_, last_traffic_;
};

}  // namespace dsalign
