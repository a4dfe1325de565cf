// Direct Preference Optimization: setup (run directory, tokenizer, pairs, reference, policy,
// optimizer), the step loop, validation on held-out pairs, checkpoints and resume, and the
// final Hugging Face export. The reference is frozen: a live copy in the compute dtype under
// no_grad, or log-probs precomputed in one pass (then it is freed before the policy loads).
#pragma once
#include <filesystem>

#include "dist/dist.h"
#include "dpo/dpo_recipe.h"

namespace dsalign {

struct DpoOutcome {
  int64_t steps = 0;
  double last_loss = 0;
  double first_accuracy = -1;          // rewards/accuracy of the first step's batch
  double last_accuracy = -1;           // of the last step's batch
  double first_validation_accuracy = -1;  // on the held-out pairs before the first step
  double validation_accuracy = -1;     // at the end; -1: no validation split
  double reference_bytes = 0;          // the reference's weights in its dtype
  bool reference_resident = false;     // whether they stayed in memory during training
  std::filesystem::path final_dir;
};

// resume: "" (fresh), "latest", or a checkpoint directory (as for sft).
// `dist`: the ranks of the run (every rank calls run_dpo with its own); Dist{} is one process.
DpoOutcome run_dpo(const DpoRecipe& recipe, const RecipeFile& file, const std::string& resume = "",
                   const Dist& dist = Dist{});

}  // namespace dsalign
