// A DPO recipe: `run`, `model` (the policy: an SFT output, a run directory or a Hugging Face
// directory), `data` (preference JSONL), `train`, and `dpo`:
//
//   dpo:
//     loss: sigmoid            # sigmoid | robust | ipo | hinge | rpo | simpo (dpo/dpo_loss.h)
//     beta: 0.1
//     label_smoothing: 0.0     # sigmoid/rpo/simpo: conservative DPO's e; robust: flip probability
//     rpo_alpha: 1.0           # rpo only
//     simpo_gamma: 0.5         # simpo only
//     reference:
//       mode: live             # live: a frozen copy runs each step; precomputed: one pass first
//       path: ""               # default: model.path
//       batch_size: 0          # rows per reference forward when precomputing; 0 = train.micro_batch_size
//       cache_dir: ""          # precomputed log-probs; default ~/.cache/dsalign/reference_logps
//
// and optionally `monitor.eval` (eval/eval_monitor.h): a suite run on the policy during training.
#pragma once
#include <filesystem>
#include <optional>
#include <string>

#include "eval/eval_monitor.h"
#include "dpo/dpo_loss.h"
#include "train/recipe_file.h"
#include "train/recipe_sections.h"
#include "dist/dist_config.h"
#include "train/train_config.h"

namespace dsalign {

struct ReferenceSection {
  enum class Mode { live, precomputed } mode = Mode::live;
  std::filesystem::path path;  // resolved; defaults to model.path
  int64_t batch_size = 0;
  std::filesystem::path cache_dir;
};

struct DpoRecipe {
  RunSection run;
  ModelSection model;
  DataConfig data;
  TrainConfig train;
  DistConfig dist;  // how the run spreads over ranks
  DpoLossConfig loss;
  ReferenceSection reference;
  std::optional<EvalMonitorConfig> eval;  // monitor.eval
};

DpoRecipe parse_dpo_recipe(const RecipeFile& recipe);
std::string resolved_dpo_recipe_yaml(const DpoRecipe& parsed, const RecipeFile& recipe);

}  // namespace dsalign
