// The recipe's `train` section: batching, AdamW, schedule, clipping, logging and checkpoint
// cadence, and what to do with a non-finite loss. Parsed once, validated with errors naming keys.
#pragma once
#include <cstdint>
#include <string>

#include "train/schedule.h"
#include "util/yaml_reader.h"

namespace dsalign {

struct TrainConfig {
  int64_t micro_batch_size = 1;     // rows per forward/backward
  int64_t global_batch_size = 0;    // rows (or tokens, see batch_unit) per optimizer step
  enum class BatchUnit { sequences, tokens } batch_unit = BatchUnit::sequences;
  ScheduleConfig schedule;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  bool decay_norms_and_embeddings = false;  // AdamW decay on norm weights and embeddings too
  double grad_clip = 1.0;                   // global norm; 0 = off
  int64_t max_steps = 0;                    // 0 = as many as the epochs give
  int64_t log_every = 1;
  int64_t val_every = 0;                    // 0 = only at the end
  int64_t checkpoint_every_steps = 0;       // 0 = off
  double checkpoint_every_minutes = 0;      // 0 = off (the paper saves every 5 minutes)
  int64_t keep_last = 2;
  bool async_checkpoint = true;             // write checkpoints from a background thread
  enum class OnNonFinite { stop, skip } on_nonfinite = OnNonFinite::stop;
};

TrainConfig parse_train_config(YamlReader& train);

}  // namespace dsalign
