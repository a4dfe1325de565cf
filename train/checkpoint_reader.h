// Reads a training checkpoint of either layout, rows of a tensor at a time from the
// memory-mapped files, whatever world size wrote it:
//   one process  a Hugging Face directory of the master weights plus trainer_state.safetensors
//                (AdamW moments and steps, rng.cpu);
//   several      shards/rank_<r>-of-<N>.safetensors, each rank's rows of every weight and moment
//                (dim 0, dist/shard_plan's row_shard), the AdamW steps and the rank's rng.cpu,
//                described by shard_layout.json (see train/sharded_checkpoint.h).
// A rank resuming on another world size or strategy asks for the rows it now owns; export asks
// for whole tensors, one at a time.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/weight_file.h"

namespace dsalign {

class CheckpointReader {
 public:
  // Error naming the file when the directory is not a complete checkpoint of either layout.
  explicit CheckpointReader(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  bool sharded() const { return sharded_; }
  int64_t world_size() const { return world_; }  // the run that wrote it (1: one process)
  bool has(const std::string& name) const { return shapes_.count(name) > 0; }
  // Error naming the checkpoint when absent.
  const std::vector<int64_t>& shape(const std::string& name) const;
  // Rows [begin, end) of dim 0 of `name`, an owned CPU tensor in its stored dtype.
  torch::Tensor rows(const std::string& name, int64_t begin, int64_t end) const;
  torch::Tensor whole(const std::string& name) const;
  // rng.cpu of `rank` when that rank wrote one, else rank 0's.
  torch::Tensor rng_state(int64_t rank) const;

 private:
  struct Piece {
    size_t file;
    TensorEntry entry;
    int64_t begin = 0, end = 0;  // the rows of the whole tensor this piece holds
  };
  void add_file(const std::filesystem::path& path);
  std::filesystem::path dir_;
  bool sharded_ = false;
  int64_t world_ = 1;
  std::vector<std::unique_ptr<WeightFile>> files_;
  std::map<std::string, std::vector<int64_t>> shapes_;
  std::map<std::string, std::vector<Piece>> pieces_;  // by the first row they hold
  std::vector<Piece> rng_;                            // per rank, in rank order
};

}  // namespace dsalign
