// `dsalign run <pipeline.yaml>`: stages in order, each stage's output the next one's input.
//
//   run: {name, output_dir}          # stage outputs go to <output_dir>/<stage name>
//   stages:
//     - name: base                   # init: a randomly initialised model with a tokenizer
//       init: {preset: tiny-coder, tokenizer: <dir>, seed: 0, dtype: fp32}
//                                    # or config: <config.json> (a model shape of one's own)
//     - name: stage1                 # sft: a recipe, plus overrides applied to it
//       sft: sft_stage1.yaml
//       overrides: {model.path: "${base.output}", train.lr: 1e-5}
//     - name: dpo                    # dpo: a DPO recipe, plus overrides (as sft)
//       dpo: dpo.yaml
//       overrides: {model.path: "${stage1.output}"}
//     - name: chat                   # export: a chat checkpoint
//       export: {from: "${stage1.output}", dtype: bf16}
//
// "${name.output}" in any string value names an earlier stage's output: an init's model
// directory, an sft or dpo run's final/, an export's directory. A stage whose output is complete
// is skipped; an sft or dpo stage that has checkpoints but no final/ resumes from its newest one.
#pragma once
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dist/dist.h"
#include "model/config.h"
#include "train/recipe_file.h"

namespace dsalign {

struct PipelineStage {
  enum class Kind { init, sft, dpo, export_ } kind = Kind::sft;
  std::string name;
  std::filesystem::path output;  // <run.output_dir>/<name>
  // init: the shape, from `preset` or from a config.json (`config`)
  std::string preset;
  std::filesystem::path config;
  ModelConfig model_config;
  std::filesystem::path tokenizer;
  int64_t seed = 0;
  std::string dtype = "fp32";
  // sft, dpo
  std::filesystem::path recipe;
  std::vector<std::string> overrides;  // "a.b=value", interpolated
  // export
  std::filesystem::path from;
  std::string export_dtype = "bf16";
};

struct Pipeline {
  std::string name;
  std::filesystem::path output_dir;
  std::vector<PipelineStage> stages;
};

// Parses and interpolates; errors name the file and key (an unknown stage in ${...}, a stage
// that names a later one, a duplicate name, a stage with not exactly one of init/sft/dpo/export).
Pipeline parse_pipeline(const RecipeFile& file);

struct PipelineOptions {
  std::optional<std::string> from_stage;  // rerun this stage and all after it from scratch
};

// Runs the stages in order; returns the last stage's output. With several ranks (`dist`), every
// rank runs every stage: sft and dpo stages train across the ranks, rank 0 alone writes init and
// export stages, and rank 0 decides what is done already and what resumes.
std::filesystem::path run_pipeline(const Pipeline& pipeline, const PipelineOptions& options, const Dist& dist = Dist{});

// The model.device of the pipeline's sft and dpo stages ("cpu" without any); an error names the
// stages when they differ (one process group serves the whole pipeline).
std::string pipeline_device(const Pipeline& pipeline);

}  // namespace dsalign
