// sft: the training subcommands.
#include <iostream>

#include "cli/args.h"
#include "sft/sft_trainer.h"
#include "util/error.h"

namespace dsalign::cli {

int sft_command(const Args& args) {
  po::options_description options("options");
  std::string recipe_path;
  std::vector<std::string> overrides;
  std::string resume;
  options.add_options()
      ("resume", po::value(&resume)->implicit_value("latest"), "continue from the newest checkpoint, or from a given checkpoint directory")
      ("recipe", po::value(&recipe_path)->required(), "recipe.yaml")
      ("override", po::value(&overrides)->multitoken(), "key.path=value (also accepted positionally after the recipe)");
  po::positional_options_description positional;
  positional.add("recipe", 1).add("override", -1);
  po::variables_map vm;
  if (!parse(args, "dsalign sft <recipe.yaml> [a.b.c=value ...] [--resume [latest|<checkpoint dir>]]\n\n"
                   "Supervised fine-tuning from a recipe (sections run, model, data, train). Writes\n"
                   "<output_dir>/config.yaml (resolved), metrics.jsonl, and final/ (a Hugging Face checkpoint\n"
                   "with the tokenizer and chat template; generation_config.json's EOS is the end-of-turn token).",
             options, positional, vm))
    return 0;
  RecipeFile recipe = load_recipe(recipe_path, overrides);
  SftRecipe sft = parse_sft_recipe(recipe);
  SftOutcome outcome = run_sft(sft, recipe, resume);
  std::cout << "sft: " << outcome.steps << " steps, last loss " << outcome.last_loss;
  if (outcome.validation_loss >= 0) std::cout << ", validation loss " << outcome.validation_loss;
  if (outcome.repetition_ratio >= 0) std::cout << ", repetition ratio " << outcome.repetition_ratio;
  std::cout << "\nrun directory: " << sft.run.output_dir.string() << " (config.yaml, metrics.jsonl)\nchat checkpoint: "
            << outcome.final_dir.string() << "\n";
  return 0;
}

}  // namespace dsalign::cli
