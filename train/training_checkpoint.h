// Training checkpoints: checkpoints/step_<N>/ holds a loadable Hugging Face directory of the
// master weights (config.json, model.safetensors, tokenizer files) plus trainer_state.safetensors
// (AdamW moments and step per parameter, the CPU RNG state) and state.json (step, data position,
// counters, chat format). Written under a temporary name and renamed, by a background thread: the
// training loop waits only for the copy into host buffers kept from one checkpoint to the next
// (train/host_staging.h).
#pragma once
#include <exception>
#include <filesystem>
#include <chrono>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "model/decoder.h"
#include "train/adamw.h"
#include "train/host_staging.h"

namespace dsalign {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

class CheckpointReader;

// A multi-rank run's checkpoint: what this rank writes of it (train/sharded_checkpoint.h).
struct ShardPart {
  int64_t rank = 0, world = 1;
  std::string token;                  // names the staging directory (same on every rank)
  std::chrono::milliseconds wait{0};  // how long rank 0 waits for the others' files
  std::string strategy;
  nlohmann::json tensors;             // shard_layout.json's "tensors" (rank 0)
};

// A checkpoint held in host memory, ready to write.
struct CheckpointSnapshot {
  std::filesystem::path dir;  // <run>/checkpoints/step_<N>
  ModelConfig config;
  torch::ScalarType weight_dtype = torch::kFloat32;
  NamedTensors weights;        // master weights, host copies
  NamedTensors trainer_state;  // "optimizer.<param>.exp_avg" / ".exp_avg_sq" / ".step", "rng.cpu"
  nlohmann::json state;        // state.json
  std::filesystem::path tokenizer_dir;  // its tokenizer files are copied in
  int64_t keep_last = 2;                // newest complete checkpoints kept after this one lands
  // Set in a multi-rank run: weights and trainer_state are this rank's rows, written as its part
  // of a sharded checkpoint.
  std::optional<ShardPart> shard;
};

// Copies the weights (checkpoint names; under zero3 gathered from the ranks) into `staging` and
// the CPU RNG state to host memory (the only part that stalls training), with the AdamW state
// given (host tensors named as adamw_state_tensors names them); returns once every copy landed.
CheckpointSnapshot snapshot_training_state(CausalLM& model, const NamedTensors& weights, NamedTensors optimizer_state,
                                           HostStaging& staging);

// The default CPU generator's state (what "rng.cpu" holds).
torch::Tensor cpu_rng_state();

// AdamW's state of each named tensor it has stepped, as host copies (in `staging`) named
// "optimizer.<name>.exp_avg", ".exp_avg_sq" and ".step". Copies from a GPU land by staging.finish().
NamedTensors adamw_state_tensors(const NamedTensors& named, const AdamW& optimizer, HostStaging& staging);
// Restores what adamw_state_tensors saved (each tensor's part of it: a rank's rows) into
// `optimizer`'s state for each named tensor; `file` names the checkpoint in errors.
void restore_adamw_state(const NamedTensors& named, AdamW& optimizer, const std::map<std::string, torch::Tensor>& saved,
                         const std::string& file);

// Writes, renames into place, then removes all but the newest keep_last complete checkpoints.
// A failure (a full disk) leaves no directory at snapshot.dir and earlier checkpoints untouched.
// With snapshot.shard, this rank's part of a sharded checkpoint (write_sharded_checkpoint).
void write_training_checkpoint(const CheckpointSnapshot& snapshot);
// Removes all but the newest keep_last complete checkpoints under `root`.
void prune_checkpoints(const std::filesystem::path& root, int64_t keep_last);

// Restores the weights (every parameter, strictly by name and shape; only its rows when the
// model's parameters are sharded) and the CPU RNG (`rank`'s, or rank 0's) from a checkpoint of
// either layout; returns its state.json. The AdamW state is the caller's to restore.
nlohmann::json load_training_checkpoint(const CheckpointReader& reader, CausalLM& model, int64_t rank);

// The newest complete (state.json present) checkpoints/step_<N> of a run directory, or empty.
std::filesystem::path newest_training_checkpoint(const std::filesystem::path& run_dir);

// One write in flight at a time. A snapshot is taken into staging() (which first waits for the
// write in flight: its buffers are reused) and handed to submit(). A failed write is rethrown (as
// Error) by the next staging(), submit() or wait(). Written in the foreground, a snapshot's
// buffers are let go once written; in the background they are kept for the next one.
class CheckpointWriter {
 public:
  // With `pin_buffers`, a background writer's kept buffers for GPU tensors are page-locked and
  // filled asynchronously (a foreground writer's never: registering them for every checkpoint would
  // cost more than it saves). Off in training runs until scripts/gpu_check.sh has run it on a GPU.
  explicit CheckpointWriter(bool background, bool pin_buffers = false)
      : background_(background), staging_(background && pin_buffers) {}
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  HostStaging& staging();
  void submit(CheckpointSnapshot snapshot);
  void wait();

 private:
  bool background_;
  HostStaging staging_;
  std::thread thread_;
  std::exception_ptr error_;
};

}  // namespace dsalign
