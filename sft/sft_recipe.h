// An SFT recipe: the sections `run`, `model`, `data`, `train`, `monitor` and `dist`, parsed once
// into typed structs.
#pragma once
#include <filesystem>
#include <string>

#include <optional>

#include "data/data_config.h"
#include "eval/eval_monitor.h"
#include "eval/repetition.h"
#include "train/recipe_file.h"
#include "train/recipe_sections.h"
#include "dist/dist_config.h"
#include "train/train_config.h"

namespace dsalign {

struct SftRecipe {
  RunSection run;
  ModelSection model;
  DataConfig data;
  TrainConfig train;
  DistConfig dist;  // how the run spreads over ranks
  std::optional<RepetitionEvalConfig> repetition;  // monitor.repetition
  std::optional<EvalMonitorConfig> eval;           // monitor.eval
};

// Relative paths (model.path, data sources, run.output_dir, monitor prompts) resolve against the recipe's folder.
SftRecipe parse_sft_recipe(const RecipeFile& recipe);

// The recipe as the run directory records it (config.yaml): overrides applied and every path
// absolute, so the file means the same wherever it is read from.
std::string resolved_recipe_yaml(const SftRecipe& parsed, const RecipeFile& recipe);

}  // namespace dsalign
