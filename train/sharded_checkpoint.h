// Checkpoints of a multi-rank run: every rank writes its own rows, in the background, and rank 0
// publishes the directory once every rank's file is there.
//   checkpoints/step_N/
//     rank_<r>-of-<N>.safetensors  rank r's rows (dim 0, dist/shard_plan's row_shard) of every
//                                  weight ("<name>", fp32 master weights) and AdamW moment
//                                  ("optimizer.<name>.exp_avg", ".exp_avg_sq"), the AdamW steps
//                                  ("optimizer.<name>.step", the same on every rank) and its rng.cpu
//     shard_layout.json            world size, strategy, the files, and per tensor its shape and
//                                  the rows of each rank (or "whole": in every file)
//     config.json, tokenizer files rank 0: the model the shards make up (for resume and export)
//     state.json                   rank 0, written last: its presence marks the checkpoint complete
// The ranks write into checkpoints/.step_N.<token>.partial, where the token is this checkpoint's
// (the same on every rank, new for every attempt, so leftovers of a killed attempt are never
// mixed in); rank 0 waits for every rank's file at most `wait`, then writes state.json and
// renames the directory to step_N. train/checkpoint_reader reads it back on any world size, and
// `dsalign export` turns it into a Hugging Face directory one tensor at a time.
#pragma once
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>

#include "train/training_checkpoint.h"

namespace dsalign {

std::string shard_file_name(int64_t rank, int64_t world);  // "rank_00001-of-00004.safetensors"

// Writes snapshot.shard's part: snapshot.weights and snapshot.trainer_state hold this rank's rows.
// Rank 0 also publishes the directory and removes all but the newest keep_last complete
// checkpoints (and staging directories of earlier steps).
void write_sharded_checkpoint(const CheckpointSnapshot& snapshot);

}  // namespace dsalign
