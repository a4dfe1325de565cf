#include "sft/sft_recipe.h"

#include "util/error.h"

namespace dsalign {

SftRecipe parse_sft_recipe(const RecipeFile& recipe) {
  const std::string file = recipe.path.string();
  const std::filesystem::path base = recipe.path.parent_path();
  YamlReader root(recipe.root, "", file);
  SftRecipe r;
  YamlReader run = root.child("run");
  r.run = parse_run_section(run, base, "sft");
  YamlReader model = root.child("model");
  r.model = parse_model_section(model, base);

  YamlReader data = root.child("data");
  r.data = parse_data_section(data, base);

  YamlReader train = root.child("train");
  r.train = parse_train_config(train);

  YamlReader monitor = root.child("monitor");
  const bool with_repetition = monitor.has("repetition");
  YamlReader repetition = monitor.child("repetition");
  if (with_repetition) r.repetition = parse_repetition_eval_config(repetition, base);
  const bool with_eval = monitor.has("eval");
  YamlReader eval = monitor.child("eval");
  if (with_eval) r.eval = parse_eval_monitor_config(eval, base);
  monitor.finish();
  YamlReader dist = root.child("dist");
  r.dist = parse_dist_config(dist);
  root.finish();
  return r;
}

std::string resolved_recipe_yaml(const SftRecipe& r, const RecipeFile& recipe) {
  YAML::Node root = YAML::Clone(recipe.root);
  write_absolute_paths(root, r.run, r.model, r.data);
  if (r.repetition) root["monitor"]["repetition"]["prompts"] = std::filesystem::absolute(r.repetition->prompts).string();
  if (r.eval) root["monitor"]["eval"]["suite"] = std::filesystem::absolute(r.eval->suite.file).string();
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

}  // namespace dsalign
