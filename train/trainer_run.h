// What a training command does around its own loss, the same for SFT and DPO: the run directory
// on every rank (recipe hashes compared), the model loaded (each rank its rows under zero3),
// resumed and handed to DataParallel; then after each optimizer step's forward and backward the
// non-finite check, the learning rate and AdamW step, the metrics line and progress line (rank
// 0), the checkpoint cadence; at the end the last checkpoint and final/. A trainer provides its
// data, its loss (through train/step_engine's run_micro_batches) and its metrics.
#pragma once
#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "dist/data_parallel.h"
#include "dist/dist.h"
#include "dist/dist_config.h"
#include "train/metrics.h"
#include "train/recipe_sections.h"
#include "train/run_setup.h"
#include "train/train_config.h"

namespace dsalign {

struct TrainerSpec {
  const RunSection& run;
  const TrainConfig& train;
  const DistConfig& dist;
  std::string resolved_recipe;           // config.yaml; its hash must agree on every rank
  std::filesystem::path recipe_path;     // for errors
  std::vector<std::string> extra_dirs;   // run folders removed with run.overwrite ("repetition")
  std::string resume;                    // --resume: "", "latest" or a checkpoint directory
};

// `options` on this rank's device: cuda:LOCAL_RANK for a CUDA run of several ranks.
DecoderOptions on_rank_device(DecoderOptions options, const Dist& dist);

class TrainerRun {
 public:
  // Resolves the strategy, checks the checkpoint to resume from, and prepares the run directory
  // on every rank.
  TrainerRun(const TrainerSpec& spec, const Dist& dist);
  // Unwinding from an error before the first step, removes the run directory it created.
  ~TrainerRun();
  TrainerRun(const TrainerRun&) = delete;
  TrainerRun& operator=(const TrainerRun&) = delete;

  // The model of `model_dir` (whose tokenizer and chat `format` checkpoints carry) on this rank's
  // device: loaded whole, or its rows only under zero3; checked against the tokenizer's
  // vocabulary; resumed; handed to DataParallel; metrics.jsonl opened on rank 0.
  void load_model(const std::filesystem::path& model_dir, DecoderOptions options, int64_t tokenizer_vocab,
                  ChatFormat format);
  void set_total_steps(int64_t total) { total_steps_ = total; }

  const Dist& dist() const { return dist_; }
  ShardStrategy strategy() const { return strategy_; }
  bool resuming() const { return !spec_.resume.empty(); }
  CausalLM& model() { return *model_; }
  DataParallel& dp() { return *dp_; }
  const DecoderOptions& options() const { return options_; }
  TrainingState& state() { return state_; }
  int64_t step() const { return state_.step; }
  int64_t total_steps() const { return total_steps_; }
  std::optional<MetricsLog>& metrics() { return metrics_; }  // rank 0 only

  struct StepResult {
    double loss = 0, grad_norm = 0;
    int64_t tokens = 0;                        // over all ranks
    int64_t epoch = 0, next_step_in_epoch = 0; // the data position after this step
    double epoch_progress = 0;                 // epoch + its fraction done, for metrics
    std::chrono::steady_clock::time_point start;
  };
  // After a step's forward and backward (gradients summed and clipped): counts the step; skips it
  // on a non-finite loss or norm (or stops, per train.on_nonfinite) and returns false; else takes
  // the AdamW step at the schedule's rate, runs `add_metrics(record)` on every rank (collectives
  // such as validation allowed), writes the metrics line and the progress line (`what`) on
  // logged steps (rank 0), and writes a due checkpoint.
  bool finish_step(const StepResult& result, const std::function<void(nlohmann::json& record)>& add_metrics,
                   const std::string& what);
  // The last step's checkpoint, unless written already (it goes out while the caller validates).
  void checkpoint_last();
  // Waits for the checkpoints and writes final/; every rank returns once it is complete.
  std::filesystem::path finish();

 private:
  void checkpoint();
  nlohmann::json step_record(const StepResult& result, double lr, double tokens_per_s, const std::vector<double>& peaks);

  TrainerSpec spec_;
  const Dist& dist_;
  ShardStrategy strategy_;
  std::filesystem::path out_, model_dir_;
  ChatFormat format_ = ChatFormat::deepseek_llm;
  DecoderOptions options_;
  std::optional<CausalLM> model_;
  std::unique_ptr<DataParallel> dp_;
  TrainingState state_;
  int64_t total_steps_ = 0, first_step_ = 0, last_checkpoint_step_ = 0;
  bool creates_directory_ = false;  // rank 0 of a new run whose directory was absent or empty
  std::optional<MetricsLog> metrics_;
  std::unique_ptr<CheckpointWriter> writer_;
  std::chrono::steady_clock::time_point run_start_, last_checkpoint_;
};

}  // namespace dsalign
