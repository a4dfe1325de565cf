// sft: the training subcommands.
#include <iostream>

#include "cli/args.h"
#include "sft/pipeline.h"
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

int run_command(const Args& args) {
  po::options_description options("options");
  std::string recipe_path, from;
  std::vector<std::string> overrides;
  options.add_options()
      ("from", po::value(&from), "rerun this stage and every later one from scratch")
      ("recipe", po::value(&recipe_path)->required(), "pipeline.yaml")
      ("override", po::value(&overrides)->multitoken(), "key.path=value for the pipeline file (also positional)");
  po::positional_options_description positional;
  positional.add("recipe", 1).add("override", -1);
  po::variables_map vm;
  if (!parse(args, "dsalign run <pipeline.yaml> [a.b.c=value ...] [--from <stage>]\n\n"
                   "Runs a pipeline's stages in order (init, sft, export); \"${stage.output}\" passes one stage's\n"
                   "output to a later one. Stages whose output is complete are skipped; an interrupted sft stage\n"
                   "resumes from its newest checkpoint. Outputs go to <run.output_dir>/<stage name>.",
             options, positional, vm))
    return 0;
  RecipeFile recipe = load_recipe(recipe_path, overrides);
  Pipeline pipeline = parse_pipeline(recipe);
  PipelineOptions o;
  if (!from.empty()) o.from_stage = from;
  std::filesystem::path result = run_pipeline(pipeline, o);
  std::cout << "pipeline " << pipeline.name << " done: " << result.string() << "\n";
  return 0;
}

}  // namespace dsalign::cli
