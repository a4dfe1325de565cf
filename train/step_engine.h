// What the SFT and DPO step loops share, so that each trainer provides only its loss and its
// metrics: dealing a step's rows to this rank, running the same number of micro-batches on every
// rank (so all issue the same collectives in the same order), gradient synchronisation and
// clipping through DataParallel, the checkpoint decision every rank agrees on, and the progress
// line.
#pragma once
#include <chrono>
#include <filesystem>
#include <functional>
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

// --resume on every rank: weights and RNG from the checkpoint, this rank's AdamW state through
// `dp`; rank 0 also trims metrics.jsonl past the checkpoint. A fresh run returns step 0.
TrainingState resume_on_ranks(const std::filesystem::path& run_dir, const std::string& resume, CausalLM& model,
                              DataParallel& dp, const Dist& dist);

// metrics.jsonl, opened on rank 0 only (appending on a resume).
std::optional<MetricsLog> open_metrics(const std::filesystem::path& run_dir, bool resuming, const Dist& dist);

// This rank's rows of a step of `rows` rows (copied, in order) and the micro-batch count every
// rank runs.
struct RankStep {
  std::vector<PackedRow> rows;
  int64_t micro_batches = 0;
};
RankStep plan_rank_step(const std::vector<PackedRow>& step_rows, const Dist& dist, int64_t micro_batch_size);

// For each of the step's micro-batches, `micro(begin, end)` on this rank's rows [begin, end) (not
// called for the empty micro-batches of a rank with fewer rows), then the gradients summed over
// the ranks and clipped. Returns the global gradient norm (before clipping).
double run_micro_batches(const RankStep& plan, int64_t micro_batch_size, DataParallel& dp, double grad_clip,
                         const std::function<void(size_t begin, size_t end)>& micro);

// Whether a checkpoint is due after `step`: every checkpoint_every_steps, or checkpoint_every_minutes
// since `last` by rank 0's clock (a collective then, so every rank agrees).
bool checkpoint_due(const TrainConfig& train, int64_t step, std::chrono::steady_clock::time_point last, const Dist& dist);

// "step 12/100  <what>  lr ..  grad_norm ..  .. tok/s  ETA ..s" on stderr (rank 0 only; \r on a tty).
void print_step_progress(const Dist& dist, int64_t step, int64_t total_steps, const std::string& what, double lr,
                         double grad_norm, double tokens_per_s, double seconds_so_far, int64_t steps_so_far);

}  // namespace dsalign
