// Hugging Face checkpoint directories in and out: find the weight files (single or sharded
// safetensors, or PyTorch .bin shards, each with its index), stream them into a CausalLM with a
// strict name/shape check, and write sharded safetensors + index + config atomically.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "model/decoder.h"
#include "model/weight_reader.h"
#include "model/weight_file.h"

namespace dsalign {

struct CheckpointFiles {
  enum class Format { safetensors, torch_bin };
  Format format = Format::safetensors;
  std::vector<std::filesystem::path> files;  // in load order
  std::filesystem::path index;               // empty for a single file
  std::map<std::string, std::string> weight_map;  // tensor name -> file name, from the index
};

// Prefers safetensors when both formats are present. Errors name the directory and what it lacks.
CheckpointFiles find_checkpoint_files(const std::filesystem::path& dir);

struct LoadReport {
  int64_t tensors = 0;
  int64_t bytes_read = 0;
  int files = 0;
};

// Copies every tensor of the checkpoint into `model`'s parameters (converting dtype, moving to
// the model's device), one file and one tensor at a time. A missing, unexpected, duplicated or
// misshapen tensor is an Error naming the tensor, the file and the expected shape. When the model's
// parameters are sharded (a unit runner holds them), only each tensor's rows the runner names are
// read. CPU destinations are read with pread (model/weight_reader.h); others (a GPU), and tensors
// whose elements are not contiguous in the file, are copied from the file's memory map.
LoadReport load_weights(CausalLM& model, const std::filesystem::path& dir, const WeightReadOptions& read = {});

// A model built from <dir>/config.json and loaded from <dir>'s weights.
CausalLM load_model(const std::filesystem::path& dir, const DecoderOptions& options, const WeightReadOptions& read = {});
// The read options of a model that is not trained: parameters of the file's dtype on CPU stay on
// the file's mapping (WeightReadOptions::map_same_dtype).
inline WeightReadOptions frozen_model_reads() {
  WeightReadOptions read;
  read.map_same_dtype = true;
  return read;
}

struct SaveOptions {
  torch::ScalarType dtype = torch::kBFloat16;  // on-disk dtype
  int64_t max_shard_bytes = int64_t{5} << 30;   // 5 GiB, like transformers' default "5GB"
  bool overwrite = false;
};

// Writes config.json, generation_config.json, model.safetensors (or model-0000i-of-0000N shards
// with model.safetensors.index.json) under a temporary name, then renames it to `dir`.
void save_checkpoint(CausalLM& model, const std::filesystem::path& dir, const SaveOptions& options);
// The same from named tensors (any device and dtype; converted to options.dtype on write).
void save_checkpoint(const ModelConfig& config, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                     const std::filesystem::path& dir, const SaveOptions& options);
// The same from tensors produced one at a time as they are written (host memory: one tensor).
void save_checkpoint(const ModelConfig& config, std::vector<TensorToWrite> tensors, const std::filesystem::path& dir,
                     const SaveOptions& options);

// A randomly initialised checkpoint of `config`, generated and written one tensor at a time:
// host memory stays near one tensor, whatever the model's size. Same values as
// CausalLM::init_weights(seed) on a model of the same config.
void init_checkpoint(const ModelConfig& config, uint64_t seed, const std::filesystem::path& dir,
                     const SaveOptions& options);

// Tensors in Hugging Face order (embeddings, layers, final norm, lm_head), as save writes them.
std::vector<std::pair<std::string, torch::Tensor>> checkpoint_tensors(CausalLM& model);

torch::ScalarType parse_dtype(const std::string& name);  // fp32|float32|bf16|bfloat16|fp16|float16
std::string dtype_name(torch::ScalarType dtype);         // "float32", "bfloat16", "float16"

}  // namespace dsalign
