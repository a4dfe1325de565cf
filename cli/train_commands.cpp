// sft, dpo, run: the training subcommands.
#include <iostream>

#include "cli/args.h"
#include "dist/dist.h"
#include "sft/pipeline.h"
#include "dpo/dpo_trainer.h"
#include "sft/sft_trainer.h"
#include "util/error.h"
#include "util/interrupt.h"

namespace dsalign::cli {

namespace {

// A training command's arguments: the recipe, overrides, --resume.
struct TrainArgs {
  std::string recipe, resume;
  std::vector<std::string> overrides;
};

// false after --help.
bool parse_train_args(const Args& args, const std::string& usage, TrainArgs& out) {
  po::options_description options("options");
  options.add_options()
      ("resume", po::value(&out.resume)->implicit_value("latest"), "continue from the newest checkpoint, or from a given checkpoint directory")
      ("recipe", po::value(&out.recipe)->required(), "recipe.yaml")
      ("override", po::value(&out.overrides)->multitoken(), "key.path=value (also accepted positionally after the recipe)");
  po::positional_options_description positional;
  positional.add("recipe", 1).add("override", -1);
  po::variables_map vm;
  return parse(args, usage, options, positional, vm);
}

// The ranks of this run, from torchrun's / Slurm's / dsalign launch's environment (one process
// without them), joined over Gloo on CPU or NCCL on CUDA.
Dist connect_ranks(const std::string& device, const DistConfig& config) {
  const LaunchEnv env = launch_env_from_process();
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(config.timeout_minutes * 60'000));
  return Dist::connect(env, torch::Device(device), timeout);
}

}  // namespace

int sft_command(const Args& args) {
  TrainArgs a;
  if (!parse_train_args(args, "dsalign sft <recipe.yaml> [a.b.c=value ...] [--resume [latest|<checkpoint dir>]]\n\n"
                              "Supervised fine-tuning from a recipe (sections run, model, data, train, monitor). Writes\n"
                              "<output_dir>/config.yaml (resolved), metrics.jsonl, checkpoints/, and final/ (a Hugging Face\n"
                              "checkpoint with the tokenizer and chat template; generation_config.json's EOS is the\n"
                              "end-of-turn token). Several ranks: dsalign launch --nproc-per-node N sft ..., or torchrun\n"
                              "--no-python --nproc-per-node N dsalign sft ... (the recipe's dist section: strategy ddp).",
                        a))
    return 0;
  InterruptScope interrupts;  // SIGINT / SIGTERM stop before the next step (util/interrupt)
  RecipeFile recipe = load_recipe(a.recipe, a.overrides);
  SftRecipe sft = parse_sft_recipe(recipe);
  const Dist dist = connect_ranks(sft.model.device, sft.dist);
  SftOutcome outcome = run_sft(sft, recipe, a.resume, dist);
  if (!dist.is_main()) return 0;
  std::cout << "sft: " << outcome.steps << " steps, last loss " << outcome.last_loss;
  if (outcome.validation_loss >= 0) std::cout << ", validation loss " << outcome.validation_loss;
  if (outcome.repetition_ratio >= 0) std::cout << ", repetition ratio " << outcome.repetition_ratio;
  std::cout << "\nrun directory: " << sft.run.output_dir.string() << " (config.yaml, metrics.jsonl)\nchat checkpoint: "
            << outcome.final_dir.string() << "\n";
  return 0;
}

int dpo_command(const Args& args) {
  TrainArgs a;
  if (!parse_train_args(args, "dsalign dpo <recipe.yaml> [a.b.c=value ...] [--resume [latest|<checkpoint dir>]]\n\n"
                              "Preference optimization against a frozen reference, from a recipe (sections run, model,\n"
                              "data, train, dpo). model.path is the policy's start: a Hugging Face directory or a finished\n"
                              "run (its final/). data: JSONL of {prompt, chosen, rejected}. dpo.loss: sigmoid (DPO),\n"
                              "robust, ipo, hinge, rpo or simpo; dpo.reference.mode: live or precomputed. Writes\n"
                              "<output_dir>/config.yaml, metrics.jsonl (loss, rewards/*, logps/*, val_* on held-out pairs),\n"
                              "checkpoints/ and final/ (a Hugging Face chat checkpoint). Several ranks: dsalign launch\n"
                              "--nproc-per-node N dpo ..., or torchrun (the recipe's dist section).",
                        a))
    return 0;
  InterruptScope interrupts;  // SIGINT / SIGTERM stop before the next step (util/interrupt)
  RecipeFile recipe = load_recipe(a.recipe, a.overrides);
  DpoRecipe dpo = parse_dpo_recipe(recipe);
  const Dist dist = connect_ranks(dpo.model.device, dpo.dist);
  DpoOutcome outcome = run_dpo(dpo, recipe, a.resume, dist);
  if (!dist.is_main()) return 0;
  std::cout << "dpo: " << outcome.steps << " steps, last loss " << outcome.last_loss << ", reward accuracy "
            << outcome.first_accuracy << " (first step) -> " << outcome.last_accuracy << " (last step)";
  if (outcome.validation_accuracy >= 0)
    std::cout << ", held-out reward accuracy " << outcome.first_validation_accuracy << " -> " << outcome.validation_accuracy;
  std::cout << "\nrun directory: " << dpo.run.output_dir.string() << " (config.yaml, metrics.jsonl)\nchat checkpoint: "
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
                   "Runs a pipeline's stages in order (init, sft, dpo, export); \"${stage.output}\" passes one stage's\n"
                   "output to a later one. Stages whose output is complete are skipped; an interrupted sft or dpo\n"
                   "stage resumes from its newest checkpoint. Outputs go to <run.output_dir>/<stage name>.",
             options, positional, vm))
    return 0;
  InterruptScope interrupts;  // SIGINT / SIGTERM stop the running stage before its next step (util/interrupt)
  RecipeFile recipe = load_recipe(recipe_path, overrides);
  Pipeline pipeline = parse_pipeline(recipe);
  PipelineOptions o;
  if (!from.empty()) o.from_stage = from;
  // One process group for every stage; its timeout: 30 minutes (each stage's dist section sets
  // its own strategy).
  const Dist dist = connect_ranks(pipeline_device(pipeline), DistConfig{});
  std::filesystem::path result = run_pipeline(pipeline, o, dist);
  if (dist.is_main()) std::cout << "pipeline " << pipeline.name << " done: " << result.string() << "\n";
  return 0;
}

}  // namespace dsalign::cli
