// An SFT recipe: the sections `run`, `model`, `data`, `train` and `monitor` (`dist` when
// sharding arrives), parsed once into typed structs.
#pragma once
#include <filesystem>
#include <string>

#include <optional>

#include "data/data_config.h"
#include "eval/repetition.h"
#include "train/recipe_file.h"
#include "train/train_config.h"

namespace dsalign {

struct RunSection {
  std::string name;
  std::filesystem::path output_dir;
  int64_t seed = 0;
  bool overwrite = false;  // an output_dir that already holds a run is an error unless set
};

struct ModelSection {
  std::filesystem::path path;  // a Hugging Face checkpoint directory (weights + tokenizer files)
  std::string device = "cpu";  // cpu | cuda
  std::string dtype = "fp32";  // parameters (master weights)
  std::string compute_dtype = "fp32";  // bf16: autocast over fp32 master weights
  bool activation_checkpointing = false;
  bool kernels = false;  // fused CUDA kernels where available
};

struct SftRecipe {
  RunSection run;
  ModelSection model;
  DataConfig data;
  TrainConfig train;
  std::optional<RepetitionEvalConfig> repetition;  // monitor.repetition
};

// Relative paths (model.path, data sources, run.output_dir, monitor prompts) resolve against the recipe's folder.
SftRecipe parse_sft_recipe(const RecipeFile& recipe);

// The recipe as the run directory records it (config.yaml): overrides applied and every path
// absolute, so the file means the same wherever it is read from.
std::string resolved_recipe_yaml(const SftRecipe& parsed, const RecipeFile& recipe);

}  // namespace dsalign
