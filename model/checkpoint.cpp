#include "model/checkpoint.h"

#include <nlohmann/json.hpp>

#include <set>

#include "model/weight_file.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Reads a *.index.json: {"metadata": ..., "weight_map": {tensor: file}}.
std::map<std::string, std::string> read_index(const fs::path& index) {
  json j;
  try {
    j = json::parse(read_text_file(index));
  } catch (const json::exception& e) {
    fail(index.string(), ": invalid JSON: ", first_line(e));
  }
  if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
    fail(index.string(), ": expected an object with a 'weight_map' object");
  std::map<std::string, std::string> map;
  for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
    if (!it.value().is_string()) fail(index.string(), ": weight_map['", it.key(), "'] must be a file name");
    std::string file = it.value().get<std::string>();
    if (file.find('/') != std::string::npos || file == ".." )
      fail(index.string(), ": weight_map['", it.key(), "'] = '", file, "' is not a file in this directory");
    map[it.key()] = file;
  }
  return map;
}

bool ignored_tensor(const std::string& name) { return name.ends_with("rotary_emb.inv_freq"); }

}  // namespace

CheckpointFiles find_checkpoint_files(const fs::path& dir) {
  if (!is_existing_directory(dir)) fail(dir.string(), ": not a directory (expected a Hugging Face checkpoint directory)");
  struct Candidate {
    const char* index;
    const char* single;
    CheckpointFiles::Format format;
  };
  const Candidate candidates[] = {
      {"model.safetensors.index.json", "model.safetensors", CheckpointFiles::Format::safetensors},
      {"pytorch_model.bin.index.json", "pytorch_model.bin", CheckpointFiles::Format::torch_bin},
  };
  for (const auto& c : candidates) {
    CheckpointFiles out;
    out.format = c.format;
    if (path_exists(dir / c.index)) {
      out.index = dir / c.index;
      out.weight_map = read_index(out.index);
      std::set<std::string> seen;
      for (const auto& [name, file] : out.weight_map) {
        if (seen.insert(file).second) {
          if (!path_exists(dir / file)) fail(out.index.string(), ": lists shard '", file, "' (for '", name, "'), which is missing");
          out.files.push_back(dir / file);
        }
      }
      std::sort(out.files.begin(), out.files.end());
      if (out.files.empty()) fail(out.index.string(), ": weight_map is empty");
      return out;
    }
    if (path_exists(dir / c.single)) {
      out.files.push_back(dir / c.single);
      return out;
    }
  }
  fail(dir.string(), ": no weights found (expected model.safetensors, model.safetensors.index.json, "
                     "pytorch_model.bin or pytorch_model.bin.index.json)");
}

namespace {

// WeightReadOptions::map_same_dtype: `param` becomes the file's bytes, the file kept open (and
// mapped) for as long as the parameter's storage lives. Only for a CPU parameter of the file's
// dtype whose bytes lie contiguously and aligned in the file; false leaves it to be read.
bool leave_on_mapping(const std::shared_ptr<WeightFile>& file, const TensorEntry& entry, torch::Tensor& param) {
  if (param.scalar_type() != entry.dtype || !readable_by_pread(entry, param)) return false;  // CPU, contiguous
  const torch::Tensor view = file->view(entry);
  if (reinterpret_cast<uintptr_t>(view.data_ptr()) % view.element_size() != 0) return false;
  param.set_(torch::from_blob(view.data_ptr(), view.sizes(), [file](void*) {}, view.options()));
  return true;
}

}  // namespace

LoadReport load_weights(CausalLM& model, const fs::path& dir, const WeightReadOptions& options) {
  CheckpointFiles files = find_checkpoint_files(dir);
  std::map<std::string, torch::Tensor> expected;
  for (auto& item : model->named_parameters()) expected[item.key()] = item.value();
  const bool tied = model->config.tie_word_embeddings;
  std::set<std::string> loaded;
  LoadReport report;
  torch::NoGradGuard no_grad;
  for (const fs::path& path : files.files) {
    std::shared_ptr<WeightFile> file =
        files.format == CheckpointFiles::Format::safetensors ? open_safetensors(path) : open_torch_bin(path);
    const std::string file_name = path.filename().string();
    std::vector<TensorRead> reads;
    for (const TensorEntry& entry : file->entries()) {
      if (ignored_tensor(entry.name)) continue;
      if (!files.weight_map.empty()) {
        auto listed = files.weight_map.find(entry.name);
        if (listed == files.weight_map.end())
          fail(path.string(), ": holds tensor '", entry.name, "' that ", files.index.filename().string(), " does not list");
        if (listed->second != file_name)
          fail(path.string(), ": holds tensor '", entry.name, "' that ", files.index.filename().string(), " places in ",
               listed->second);
      }
      if (tied && entry.name == "lm_head.weight") continue;  // the embedding matrix is the head
      auto it = expected.find(entry.name);
      if (it == expected.end())
        fail(path.string(), ": unexpected tensor '", entry.name, "' ", shape_string(entry.shape),
             " (not part of a LlamaForCausalLM with this config.json)");
      if (!loaded.insert(entry.name).second) fail(path.string(), ": tensor '", entry.name, "' appears twice");
      torch::Tensor& param = it->second;
      if (entry.shape != param.sizes().vec())
        fail(path.string(), ": tensor '", entry.name, "' has shape ", shape_string(entry.shape), ", config.json implies ",
             shape_string(param.sizes().vec()));
      if (!at::isFloatingType(entry.dtype))
        fail(path.string(), ": tensor '", entry.name, "' has dtype ", c10::toString(entry.dtype), ", expected a float type");
      TensorRead read{&entry, param, 0};
      if (model->unit_runner) {  // sharded parameters: only this rank's rows are read
        UnitRunner::LoadTarget target = model->unit_runner->load_target(entry.name);
        read.into = target.into;
        read.first_row = target.begin;
      }
      report.bytes_read += static_cast<int64_t>(read.into.numel() * torch::elementSize(entry.dtype));
      report.tensors += 1;
      if (read.into.numel() == 0) continue;
      if (options.map_same_dtype && !model->unit_runner && leave_on_mapping(file, entry, param)) continue;
      if (options.pread && readable_by_pread(entry, read.into, options)) {
        reads.push_back(read);
      } else {
        copy_from_mapping(*file, read);
      }
    }
    read_tensors(path, reads, options);
    report.files += 1;
  }
  for (const auto& [name, param] : expected) {
    if (!loaded.count(name))
      fail(dir.string(), ": missing tensor '", name, "' (expected shape ", shape_string(param.sizes().vec()), ") in ",
           files.index.empty() ? files.files.front().filename().string() : files.index.filename().string());
  }
  return report;
}

CausalLM load_model(const fs::path& dir, const DecoderOptions& options, const WeightReadOptions& read) {
  CausalLM model(load_model_config(dir), options);
  load_weights(model, dir, read);
  return model;
}

std::vector<std::pair<std::string, torch::Tensor>> checkpoint_tensors(CausalLM& model) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value());
  return tensors;
}

namespace {

// Shards (greedy, in order; a tensor larger than the cap gets a shard of its own), config files
// and index, written into a staging directory renamed to `dir` when complete.
void write_checkpoint(const ModelConfig& config, std::vector<TensorToWrite> tensors, const fs::path& dir,
                      const SaveOptions& options) {
  std::vector<std::vector<TensorToWrite>> shards(1);
  int64_t shard_bytes = 0, total_bytes = 0;
  for (auto& t : tensors) {
    int64_t bytes = static_cast<int64_t>(torch::elementSize(t.dtype));
    for (int64_t d : t.shape) bytes *= d;
    if (shard_bytes > 0 && shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(std::move(t));
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  StagedDirectory staged(dir, options.overwrite);
  write_file_atomic(staged.path() / "config.json", to_hf_config_json(config, dtype_name(options.dtype)).dump(2) + "\n");
  write_file_atomic(staged.path() / "generation_config.json", to_generation_config_json(config).dump(2) + "\n");
  torch::NoGradGuard no_grad;
  if (shards.size() == 1) {
    write_safetensors(staged.path() / "model.safetensors", shards[0]);
  } else {
    json weight_map = json::object();
    char name[64];
    for (size_t i = 0; i < shards.size(); ++i) {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards.size());
      write_safetensors(staged.path() / name, shards[i]);
      for (const auto& t : shards[i]) weight_map[t.name] = name;
    }
    json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    write_file_atomic(staged.path() / "model.safetensors.index.json", index.dump(2) + "\n");
  }
  staged.commit();
}

}  // namespace

void save_checkpoint(CausalLM& model, const fs::path& dir, const SaveOptions& options) {
  save_checkpoint(model->config, checkpoint_tensors(model), dir, options);
}

void save_checkpoint(const ModelConfig& config, const std::vector<std::pair<std::string, torch::Tensor>>& named,
                     const fs::path& dir, const SaveOptions& options) {
  std::vector<TensorToWrite> tensors;
  for (auto& [name, t] : named) tensors.push_back({name, t.sizes().vec(), options.dtype, [t] { return t; }});
  write_checkpoint(config, std::move(tensors), dir, options);
}

void save_checkpoint(const ModelConfig& config, std::vector<TensorToWrite> tensors, const fs::path& dir,
                     const SaveOptions& options) {
  for (auto& t : tensors) t.dtype = options.dtype;
  write_checkpoint(config, std::move(tensors), dir, options);
}

void init_checkpoint(const ModelConfig& config, uint64_t seed, const fs::path& dir, const SaveOptions& options) {
  // Names and shapes from a model on the meta device: no memory behind it.
  DecoderOptions meta;
  meta.device = torch::kMeta;
  CausalLM shapes(config, meta);
  auto generator = std::make_shared<at::Generator>(at::make_generator<at::CPUGeneratorImpl>(seed));
  std::vector<TensorToWrite> tensors;
  for (auto& [name, t] : checkpoint_tensors(shapes)) {
    std::vector<int64_t> shape = t.sizes().vec();
    tensors.push_back({name, shape, options.dtype, [name, shape, generator, &config] {
                         return initial_weight(name, shape, config.initializer_range, *generator);
                       }});
  }
  write_checkpoint(config, std::move(tensors), dir, options);
}

torch::ScalarType parse_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16") return torch::kFloat16;
  fail("unknown dtype '", name, "' (expected fp32, bf16 or fp16)");
}

std::string dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat32: return "float32";
    case torch::kBFloat16: return "bfloat16";
    case torch::kFloat16: return "float16";
    default: return c10::toString(dtype);
  }
}

}  // namespace dsalign
