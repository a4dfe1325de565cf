// What the SFT and DPO trainers share around their step loops: the run directory, the model's
// options from the recipe, AdamW, collation of packed rows, the training position a checkpoint
// restores, and resume.
#pragma once
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "data/chat_template.h"
#include "data/sft_data.h"
#include "model/decoder.h"
#include "train/recipe_sections.h"
#include "train/training_checkpoint.h"
#include "train/train_config.h"

namespace dsalign {

// Creates output_dir for a fresh run or a resume. A directory that holds a run is an error unless
// `overwrite` (then the previous run's outputs, `extra` folders included, are removed first).
void prepare_run_directory(const RunSection& run, bool resuming, const std::vector<std::string>& extra = {});
// Only the check, changing nothing: what every rank does before rank 0 prepares the directory.
void check_run_directory(const RunSection& run, bool resuming);

// The decoder options a recipe's model section asks for; `recipe` names the file in errors.
DecoderOptions decoder_options(const ModelSection& model, const std::filesystem::path& recipe);

// AdamW over the named tensors (parameters, or a rank's shards of them, named by their
// parameter) with two groups: weight decay on matrices; none on norms, biases and (unless asked)
// the embeddings. `fused`: at::_fused_adamw_ rather than the reference update.
std::unique_ptr<AdamW> make_adamw(const NamedTensors& named, const TrainConfig& train, bool fused);

// Rows [begin, end) -> decoder input and labels on `device`; rows of unequal length
// (padding-free) are padded to the longest with document -1 and label -100. Everything the step
// needs to know about the rows is computed here, on the host, so the GPU is never asked: the
// positions that carry loss (target_rows) and, with `varlen` (CausalLM::uses_varlen_attention),
// the flat layout varlen attention takes. On a GPU the copies go from pinned memory without
// blocking the host.
struct Batch {
  DecoderInput input;
  torch::Tensor labels;
  torch::Tensor target_rows;  // CausalLM::loss_sum's target_rows: b * (T - 1) + t with labels[b, t + 1] != -100
  int64_t tokens = 0;         // real tokens
  int64_t loss_tokens = 0;    // labels that carry loss (after the shift)
};
Batch collate(const std::vector<PackedRow>& rows, size_t begin, size_t end, const torch::Device& device, int32_t pad_id,
              bool varlen = false);
// A host tensor on `device`: on a GPU copied from pinned memory without blocking the host (a
// pageable copy would wait for the work queued before it); on the CPU, the tensor itself.
torch::Tensor host_to_device(const torch::Tensor& host, const torch::Device& device);

// Where training stands: what a checkpoint restores besides weights and optimizer state. The data
// order is a pure function of (seed, epoch), so (epoch, step_in_epoch) is the data position.
struct TrainingState {
  int64_t step = 0, epoch = 0, step_in_epoch = 0, tokens_seen = 0, skipped_steps = 0;
  nlohmann::json to_json(ChatFormat format) const;
  static TrainingState from_json(const nlohmann::json& j, const std::filesystem::path& file);
};

// --resume: "latest" (the newest complete checkpoint of the run) or a checkpoint directory.
std::filesystem::path checkpoint_to_resume(const std::filesystem::path& run_dir, const std::string& resume);

// --resume: restores weights and the RNG state of `rank` from the checkpoint `resume` names
// (either layout), leaves the AdamW state to `restore_optimizer` (which reads what it needs from
// the checkpoint), and returns the training position. `main` (rank 0 of a run) also drops
// metrics lines past it and logs where it resumes.
using RestoreOptimizer = std::function<void(const CheckpointReader&)>;
TrainingState resume_training(const std::filesystem::path& run_dir, const std::string& resume, CausalLM& model,
                              const RestoreOptimizer& restore_optimizer, bool main, int64_t rank);

// The host copy (in `staging`) of what checkpoints/step_<state.step> holds, ready for a
// CheckpointWriter, with the weights (checkpoint names) and the AdamW state (host tensors, as
// adamw_state_tensors names them) given: what DataParallel gathers from the ranks.
CheckpointSnapshot training_snapshot(CausalLM& model, const NamedTensors& weights, NamedTensors optimizer_state,
                                     const std::filesystem::path& run_dir,
                                     const TrainingState& state, ChatFormat format,
                                     const std::filesystem::path& tokenizer_dir, int64_t keep_last, HostStaging& staging);

// Writes the run's chat checkpoint, <run_dir>/final (replacing one a previous attempt left), with
// the tokenizer files of `tokenizer_dir`; returns its path.
std::filesystem::path export_final(CausalLM& model, const std::filesystem::path& run_dir,
                                   const std::filesystem::path& tokenizer_dir, ChatFormat format);
// The same with the weights given (checkpoint names).
std::filesystem::path export_final(const ModelConfig& config, const NamedTensors& weights,
                                   const std::filesystem::path& run_dir, const std::filesystem::path& tokenizer_dir,
                                   ChatFormat format);

// Keeps the metrics lines kept_on_resume (train/metric_tags) keeps for the checkpoint at `step`
// (a killed run may have logged past its last checkpoint).
void truncate_metrics(const std::filesystem::path& path, int64_t step);

}  // namespace dsalign
