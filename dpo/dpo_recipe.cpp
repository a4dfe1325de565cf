#include "dpo/dpo_recipe.h"

#include "util/error.h"

namespace dsalign {
namespace fs = std::filesystem;

DpoRecipe parse_dpo_recipe(const RecipeFile& recipe) {
  const fs::path base = recipe.path.parent_path();
  YamlReader root(recipe.root, "", recipe.path.string());
  DpoRecipe r;
  YamlReader run = root.child("run");
  r.run = parse_run_section(run, base, "dpo");
  YamlReader model = root.child("model");
  r.model = parse_model_section(model, base);
  YamlReader data = root.child("data");
  r.data = parse_data_section(data, base);
  YamlReader train = root.child("train");
  r.train = parse_train_config(train);
  if (r.train.batch_unit != TrainConfig::BatchUnit::sequences)
    train.error("batch_unit", "DPO batches count preference pairs; use sequences");

  YamlReader dpo = root.child("dpo");
  const std::string loss = dpo.choice("loss", {"sigmoid", "robust", "ipo", "hinge", "rpo", "simpo"}, "sigmoid");
  for (DpoLossType t : {DpoLossType::sigmoid, DpoLossType::robust, DpoLossType::ipo, DpoLossType::hinge, DpoLossType::rpo,
                        DpoLossType::simpo})
    if (loss == dpo_loss_name(t)) r.loss.type = t;
  r.loss.beta = dpo.number("beta", 0.1);
  if (!(r.loss.beta > 0)) dpo.error("beta", "must be > 0, got ", r.loss.beta);
  r.loss.label_smoothing = dpo.number("label_smoothing", 0.0);
  const double e = r.loss.label_smoothing;
  if (r.loss.type == DpoLossType::robust ? !(e >= 0 && e < 0.5) : !(e >= 0 && e <= 0.5))
    dpo.error("label_smoothing", "must be in [0, 0.5", r.loss.type == DpoLossType::robust ? ")" : "]", " for loss ", loss, ", got ", e);
  if (e > 0 && (r.loss.type == DpoLossType::ipo || r.loss.type == DpoLossType::hinge))
    dpo.error("label_smoothing", "has no meaning for loss ", loss, " (sigmoid, rpo, simpo and robust use it)");
  r.loss.rpo_alpha = dpo.number("rpo_alpha", 1.0);
  if (r.loss.rpo_alpha < 0) dpo.error("rpo_alpha", "must be >= 0");
  r.loss.simpo_gamma = dpo.number("simpo_gamma", 0.5);
  if (r.loss.simpo_gamma < 0) dpo.error("simpo_gamma", "must be >= 0");

  YamlReader reference = dpo.child("reference");
  r.reference.mode = reference.choice("mode", {"live", "precomputed"}, "live") == "live" ? ReferenceSection::Mode::live
                                                                                         : ReferenceSection::Mode::precomputed;
  const std::string path = reference.string("path", std::string());
  r.reference.path = path.empty() ? r.model.path : resolve_recipe_path(base, path);
  r.reference.batch_size = reference.integer("batch_size", 0);
  if (r.reference.batch_size < 0) reference.error("batch_size", "must be >= 0 (0: train.micro_batch_size)");
  if (r.reference.batch_size == 0) r.reference.batch_size = r.train.micro_batch_size;
  const std::string cache = reference.string("cache_dir", std::string());
  r.reference.cache_dir = cache.empty() ? fs::path() : resolve_recipe_path(base, cache);
  reference.finish();
  dpo.finish();
  YamlReader monitor = root.child("monitor");
  const bool with_eval = monitor.has("eval");
  YamlReader eval = monitor.child("eval");
  if (with_eval) r.eval = parse_eval_monitor_config(eval, base);
  monitor.finish();
  YamlReader dist = root.child("dist");
  r.dist = parse_dist_config(dist);
  root.finish();
  return r;
}

std::string resolved_dpo_recipe_yaml(const DpoRecipe& r, const RecipeFile& recipe) {
  YAML::Node root = YAML::Clone(recipe.root);
  write_absolute_paths(root, r.run, r.model, r.data);
  root["dpo"]["reference"]["path"] = fs::absolute(r.reference.path).string();
  if (!r.reference.cache_dir.empty()) root["dpo"]["reference"]["cache_dir"] = fs::absolute(r.reference.cache_dir).string();
  if (r.eval) root["monitor"]["eval"]["suite"] = fs::absolute(r.eval->suite.file).string();
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

}  // namespace dsalign
