// What the SFT and DPO step loops share, so that each trainer provides only its loss and its
// metrics: dealing a step's rows to this rank, running the same number of micro-batches on every
// rank (so all issue the same collectives in the same order), gradient synchronisation and
// clipping through DataParallel, the checkpoint decision every rank agrees on, and the progress
// line.
#pragma once
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "data/sft_data.h"
#include "dist/data_parallel.h"
#include "dist/dist.h"
#include "train/metrics.h"
#include "train/recipe_sections.h"
#include "train/run_setup.h"
#include "train/train_config.h"

namespace dsalign {

// The run directory on every rank: all ranks check it and compare a hash of their resolved recipe
// (ranks that disagree stop together), then rank 0 prepares the directory (removing `extra`
// folders with run.overwrite) and writes config.yaml.
void prepare_run_on_ranks(const RunSection& run, bool resuming, const std::string& resolved_recipe,
                          const std::filesystem::path& recipe_path, const Dist& dist,
                          const std::vector<std::string>& extra = {});

// --resume on every rank, before the model is handed to DataParallel: weights (this rank's rows
// when they are sharded) and RNG from the checkpoint, of either layout and any world size; the
// AdamW state follows through restore_optimizer(). Rank 0 also trims metrics.jsonl past the
// checkpoint. A fresh run returns step 0.
struct ResumedRun {
  TrainingState state;
  std::filesystem::path checkpoint;  // empty for a fresh run
  // This rank's rows of the checkpoint's AdamW state into `dp`.
  void restore_optimizer(DataParallel& dp) const;
};
ResumedRun resume_on_ranks(const std::filesystem::path& run_dir, const std::string& resume, CausalLM& model, const Dist& dist);

// metrics.jsonl and tensorboard/ (run.tensorboard), opened on rank 0 only (appending on a
// resume); a new run's TensorBoard log starts with the resolved recipe as text at step 0.
std::optional<MetricsLog> open_metrics(const RunSection& run, bool resuming, const std::string& resolved_recipe,
                                       const Dist& dist);

// This rank's rows of a step of `rows` rows (copied, in order) and the micro-batch count every
// rank runs.
struct RankStep {
  std::vector<PackedRow> rows;
  int64_t micro_batches = 0;
  std::vector<PackedRow> filler;  // the step's first row: what a rank out of rows runs under zero3
};
RankStep plan_rank_step(const std::vector<PackedRow>& step_rows, const Dist& dist, int64_t micro_batch_size);

// For each of the step's micro-batches, `micro(rows, begin, end, 1.0)` on this rank's rows
// [begin, end), then the gradients summed over the ranks and clipped. Returns the global gradient
// norm (before clipping). A rank with fewer rows skips its empty micro-batches, except under
// zero3, where every forward and backward gathers units with the other ranks: there it runs
// `micro(plan.filler, 0, 1, 0.0)`, whose loss and metrics the trainer weighs by 0.
using MicroBatch = std::function<void(const std::vector<PackedRow>& rows, size_t begin, size_t end, double weight)>;
double run_micro_batches(const RankStep& plan, int64_t micro_batch_size, DataParallel& dp, double grad_clip,
                         const MicroBatch& micro);

// What this rank writes for the checkpoint of state.step: one process writes the one-process
// layout (a Hugging Face directory of the master weights plus trainer_state.safetensors); each
// rank of several writes its part of a sharded checkpoint, which rank 0 publishes once every
// rank's file is there (waiting at most `timeout_minutes`). A collective (the checkpoint's token).
// The host copies are `staging`'s buffers (CheckpointWriter::staging()).
CheckpointSnapshot rank_checkpoint(CausalLM& model, DataParallel& dp, const Dist& dist, const std::filesystem::path& run_dir,
                                   const TrainingState& state, ChatFormat format, const std::filesystem::path& tokenizer_dir,
                                   int64_t keep_last, double timeout_minutes, HostStaging& staging);

// The run's final/ chat checkpoint: one process exports the model it holds; with several ranks,
// rank 0 exports the run's last (sharded) checkpoint, step `step`, one tensor at a time, and
// every rank returns once final/ is complete.
void export_final_on_ranks(CausalLM& model, DataParallel& dp, const Dist& dist, const std::filesystem::path& run_dir,
                           int64_t step, const std::filesystem::path& tokenizer_dir, ChatFormat format);

// Whether a checkpoint is due after `step`: every checkpoint_every_steps, or checkpoint_every_minutes
// since `last` by rank 0's clock (a collective then, so every rank agrees).
bool checkpoint_due(const TrainConfig& train, int64_t step, std::chrono::steady_clock::time_point last, const Dist& dist);

// "step 12/100  <what>  lr ..  grad_norm ..  .. tok/s  ETA ..s" on stderr (rank 0 only; \r on a tty).
void print_step_progress(const Dist& dist, int64_t step, int64_t total_steps, const std::string& what, double lr,
                         double grad_norm, double tokens_per_s, double seconds_so_far, int64_t steps_so_far);

}  // namespace dsalign
