// Supervised fine-tuning: setup (run directory, tokenizer, data, model, optimizer), the step loop,
// validation, checkpoints, the repetition monitor, and the final Hugging Face export.
#pragma once
#include <filesystem>

#include "dist/dist.h"
#include "sft/sft_recipe.h"

namespace dsalign {

struct SftOutcome {
  int64_t steps = 0;
  double last_loss = 0;
  double validation_loss = -1;   // -1: no validation split
  double repetition_ratio = -1;  // the last measured; -1: no repetition monitor
  std::filesystem::path final_dir;
};

// resume: "" (a fresh run), "latest" (the newest checkpoint in <output_dir>/checkpoints), or a
// checkpoint directory. `dist`: the ranks of the run (every rank calls run_sft with its own);
// Dist{} is one process.
SftOutcome run_sft(const SftRecipe& recipe, const RecipeFile& file, const std::string& resume = "",
                   const Dist& dist = Dist{});

}  // namespace dsalign
