#include "sft/sft_recipe.h"

#include "util/error.h"

namespace dsalign {

SftRecipe parse_sft_recipe(const RecipeFile& recipe) {
  const std::string file = recipe.path.string();
  const std::filesystem::path base = recipe.path.parent_path();
  auto resolve = [&](const std::string& p) {
    std::filesystem::path path(p);
    return path.is_relative() ? (base / path).lexically_normal() : path;
  };
  YamlReader root(recipe.root, "", file);
  SftRecipe r;

  YamlReader run = root.child("run");
  r.run.name = run.string("name", std::string("sft"));
  r.run.output_dir = resolve(run.string("output_dir", std::nullopt));
  r.run.seed = run.integer("seed", 0);
  r.run.overwrite = run.boolean("overwrite", false);
  run.finish();

  YamlReader model = root.child("model");
  r.model.path = resolve(model.string("path", std::nullopt));
  r.model.device = model.choice("device", {"cpu", "cuda"}, "cpu");
  r.model.dtype = model.choice("dtype", {"fp32", "bf16"}, "fp32");
  r.model.compute_dtype = model.choice("compute_dtype", {"fp32", "bf16"}, "fp32");
  r.model.activation_checkpointing = model.boolean("activation_checkpointing", false);
  r.model.kernels = model.boolean("kernels", false);
  model.finish();

  YamlReader data = root.child("data");
  r.data = parse_data_config(data);
  for (auto& s : r.data.sources) s.path = resolve(s.path).string();
  if (!r.data.cache_dir.empty()) r.data.cache_dir = resolve(r.data.cache_dir).string();

  YamlReader train = root.child("train");
  r.train = parse_train_config(train);

  YamlReader monitor = root.child("monitor");
  const bool with_repetition = monitor.has("repetition");
  YamlReader repetition = monitor.child("repetition");
  if (with_repetition) r.repetition = parse_repetition_eval_config(repetition, base);
  monitor.finish();
  root.finish();
  return r;
}

std::string resolved_recipe_yaml(const SftRecipe& r, const RecipeFile& recipe) {
  YAML::Node root = YAML::Clone(recipe.root);
  root["run"]["output_dir"] = std::filesystem::absolute(r.run.output_dir).string();
  root["model"]["path"] = std::filesystem::absolute(r.model.path).string();
  for (size_t i = 0; i < r.data.sources.size(); ++i)
    root["data"]["sources"][i]["path"] = std::filesystem::absolute(r.data.sources[i].path).string();
  if (!r.data.cache_dir.empty()) root["data"]["cache_dir"] = std::filesystem::absolute(r.data.cache_dir).string();
  if (r.repetition) root["monitor"]["repetition"]["prompts"] = std::filesystem::absolute(r.repetition->prompts).string();
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

}  // namespace dsalign
