// The per-rank memory a training run will need, before it starts: `dsalign inspect <model>
// --plan world=8,strategy=zero3,seq=4096,micro_batch=1[,checkpointing]`. Pure arithmetic on the
// model's shapes (each parameter's rows padded to a multiple of the world size, as the
// strategies shard them), beside DeepSpeed's estimator formula for the same case.
#pragma once
#include <algorithm>
#include <string>

#include "dist/dist_config.h"
#include "model/config.h"

namespace dsalign {

struct PlanRequest {
  int64_t world = 1;
  ShardStrategy strategy = ShardStrategy::none;
  int64_t seq = 4096, micro_batch = 1;
  bool checkpointing = false;
  int master_bytes = 4, compute_bytes = 2;  // fp32 master weights, bf16 autocast
};

// "world=8,strategy=zero3,seq=4096,micro_batch=1,checkpointing"; every key optional. Errors name
// the key and what was expected.
PlanRequest parse_plan_request(const std::string& spec);

struct MemoryPlan {
  double weights = 0;         // master weights (or this rank's shard of them)
  double compute_copies = 0;  // compute-dtype copies of weights alive during forward and backward
  double gradients = 0;       // at their peak within a step
  double optimizer = 0;       // AdamW moments
  double activations = 0;     // an estimate for one micro-batch (see plan_report)
  // With activation checkpointing the compute copies peak at the end of forward (autocast's
  // cache) and the gradients during backward (a layer's copies at a time); without, the copies
  // are saved for backward and both coexist.
  bool checkpointing = false;
  double total() const {
    return weights + optimizer + activations +
           (checkpointing ? std::max(compute_copies, gradients) : compute_copies + gradients);
  }
  double deepspeed = 0;       // DeepSpeed's estimate of model states (no offload) for the stage
  // Host memory, not the GPU's: the buffers a background checkpoint is copied into and kept for the
  // run (train/host_staging): this rank's rows of the master weights and both moments.
  double checkpoint_host = 0;
};
MemoryPlan plan_memory(const ModelConfig& config, const PlanRequest& request);

std::string plan_report(const ModelConfig& config, const PlanRequest& request, const MemoryPlan& plan);

}  // namespace dsalign
