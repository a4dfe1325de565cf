// Training checkpoints: checkpoints/step_<N>/ holds a loadable Hugging Face directory of the
// master weights (config.json, model.safetensors, tokenizer files) plus trainer_state.safetensors
// (AdamW moments and step per parameter, the CPU RNG state) and state.json (step, data position,
// counters, chat format). Written under a temporary name and renamed, by a background thread: the
// training loop waits only for the copy to host memory.
#pragma once
#include <exception>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>
#include <vector>

#include "model/decoder.h"

namespace dsalign {

using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

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
};

// Copies weights, AdamW state and the CPU RNG state to host memory (the only part that stalls
// training).
CheckpointSnapshot snapshot_training_state(CausalLM& model, torch::optim::AdamW& optimizer);
// The same with the AdamW state given (host tensors named as adamw_state_tensors names them).
CheckpointSnapshot snapshot_training_state(CausalLM& model, NamedTensors optimizer_state);
// The same with the weights given (checkpoint names; under zero3 gathered from the ranks).
CheckpointSnapshot snapshot_training_state(CausalLM& model, const NamedTensors& weights, NamedTensors optimizer_state);

// AdamW's state of each named tensor it has stepped, as host copies named
// "optimizer.<name>.exp_avg", ".exp_avg_sq" and ".step".
NamedTensors adamw_state_tensors(const NamedTensors& named, torch::optim::AdamW& optimizer);
// Restores what adamw_state_tensors saved into `optimizer`'s state for each named tensor. With
// `rows` (one [begin, end) per tensor), the tensor holds those rows of the saved one (a shard).
void restore_adamw_state(const NamedTensors& named, const std::vector<std::pair<int64_t, int64_t>>& rows,
                         torch::optim::AdamW& optimizer, const std::map<std::string, torch::Tensor>& saved,
                         const std::string& file);

// Writes, renames into place, then removes all but the newest keep_last complete checkpoints.
// A failure (a full disk) leaves no directory at snapshot.dir and earlier checkpoints untouched.
void write_training_checkpoint(const CheckpointSnapshot& snapshot);

// Restores weights, AdamW state and the CPU RNG from `dir`; returns its state.json.
nlohmann::json load_training_checkpoint(const std::filesystem::path& dir, CausalLM& model, torch::optim::AdamW& optimizer);
// Restores weights and the CPU RNG; `trainer_state` receives trainer_state.safetensors (the AdamW
// state for the caller to restore); returns state.json.
nlohmann::json load_training_checkpoint(const std::filesystem::path& dir, CausalLM& model,
                                        std::map<std::string, torch::Tensor>& trainer_state);

// The newest complete (state.json present) checkpoints/step_<N> of a run directory, or empty.
std::filesystem::path newest_training_checkpoint(const std::filesystem::path& run_dir);

// One write in flight at a time; submit() first waits for the previous one. A failed write is
// rethrown (as Error) by the next submit() or wait().
class CheckpointWriter {
 public:
  explicit CheckpointWriter(bool background) : background_(background) {}
  ~CheckpointWriter();
  CheckpointWriter(const CheckpointWriter&) = delete;
  CheckpointWriter& operator=(const CheckpointWriter&) = delete;

  void submit(CheckpointSnapshot snapshot);
  void wait();

 private:
  bool background_;
  std::thread thread_;
  std::exception_ptr error_;
};

}  // namespace dsalign
