// The recipe sections every training command shares: `run` and `model`, parsed once into typed
// structs (SFT and DPO recipes hold both).
#pragma once
#include <filesystem>
#include <string>

#include "data/data_config.h"
#include "model/kernel_mode.h"
#include "util/yaml_reader.h"

namespace dsalign {

struct RunSection {
  std::string name;
  std::filesystem::path output_dir;
  int64_t seed = 0;
  bool overwrite = false;  // an output_dir that already holds a run is an error unless set
  bool tensorboard = true;  // also write the metrics as TensorBoard event files (<output_dir>/tensorboard)
};

struct ModelSection {
  // A Hugging Face checkpoint directory (weights + tokenizer files), or a run directory whose
  // final/ is one (the output of an earlier sft or dpo run).
  std::filesystem::path path;
  std::string device = "cpu";  // cpu | cuda
  std::string dtype = "fp32";  // parameters (master weights)
  std::string compute_dtype = "fp32";  // bf16: autocast over fp32 master weights
  bool activation_checkpointing = false;
  // auto: fused implementations only where verified on this kind of device (model/kernel_choice).
  KernelMode kernels = KernelMode::automatic;
};

// A path as the recipe writes it: relative ones are relative to the recipe's folder `base`.
std::filesystem::path resolve_recipe_path(const std::filesystem::path& base, const std::string& written);

RunSection parse_run_section(YamlReader& run, const std::filesystem::path& base, const std::string& default_name);
ModelSection parse_model_section(YamlReader& model, const std::filesystem::path& base);

// The `data` section with its paths (sources, cache_dir) resolved against `base`.
DataConfig parse_data_section(YamlReader& data, const std::filesystem::path& base);

// For the run directory's config.yaml: run.output_dir, model.path and the data paths made absolute
// in `root` (the recipe tree, overrides applied), so the file means the same wherever it is read.
void write_absolute_paths(YAML::Node& root, const RunSection& run, const ModelSection& model, const DataConfig& data);

// The checkpoint a model path names: the directory itself when it holds config.json, else its
// final/ (a finished run), with its config.json read and checked. An Error names the path and
// what was expected.
std::filesystem::path resolve_model_dir(const std::filesystem::path& path, const std::string& key);

}  // namespace dsalign
