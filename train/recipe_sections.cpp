#include "train/recipe_sections.h"

#include "model/config.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;

fs::path resolve_recipe_path(const fs::path& base, const std::string& written) {
  fs::path path(written);
  return path.is_relative() ? (base / path).lexically_normal() : path;
}

RunSection parse_run_section(YamlReader& run, const fs::path& base, const std::string& default_name) {
  RunSection r;
  r.name = run.string("name", default_name);
  r.output_dir = resolve_recipe_path(base, run.string("output_dir", std::nullopt));
  r.seed = run.integer("seed", 0);
  r.overwrite = run.boolean("overwrite", false);
  r.tensorboard = run.boolean("tensorboard", true);
  run.finish();
  return r;
}

ModelSection parse_model_section(YamlReader& model, const fs::path& base) {
  ModelSection m;
  m.path = resolve_recipe_path(base, model.string("path", std::nullopt));
  m.device = model.choice("device", {"cpu", "cuda"}, "cpu");
  m.dtype = model.choice("dtype", {"fp32", "bf16"}, "fp32");
  m.compute_dtype = model.choice("compute_dtype", {"fp32", "bf16"}, "fp32");
  m.activation_checkpointing = model.boolean("activation_checkpointing", false);
  m.kernels = parse_kernel_mode(model.choice("kernels", {"auto", "reference", "fused"}, "auto"));
  model.finish();
  return m;
}

DataConfig parse_data_section(YamlReader& reader, const fs::path& base) {
  DataConfig d = parse_data_config(reader);
  for (auto& s : d.sources) s.path = resolve_recipe_path(base, s.path).string();
  if (!d.cache_dir.empty()) d.cache_dir = resolve_recipe_path(base, d.cache_dir).string();
  return d;
}

void write_absolute_paths(YAML::Node& root, const RunSection& run, const ModelSection& model, const DataConfig& data) {
  root["run"]["output_dir"] = fs::absolute(run.output_dir).string();
  root["model"]["path"] = fs::absolute(model.path).string();
  for (size_t i = 0; i < data.sources.size(); ++i)
    root["data"]["sources"][i]["path"] = fs::absolute(data.sources[i].path).string();
  if (!data.cache_dir.empty()) root["data"]["cache_dir"] = fs::absolute(data.cache_dir).string();
}

fs::path resolve_model_dir(const fs::path& path, const std::string& key) {
  // config.json is read here, so that a bad one fails before any data is read or output written.
  if (path_exists(path / "config.json")) {
    load_model_config(path);
    return path;
  }
  if (path_exists(path / "final" / "config.json")) {
    load_model_config(path / "final");
    return path / "final";
  }
  if (path_exists(path / "config.yaml"))
    fail(path.string(), " (", key, "): a run directory without final/ (the run has not finished; resume it first)");
  fail(path.string(), " (", key, "): expected a Hugging Face checkpoint directory (config.json) or a finished run directory (final/)");
}

}  // namespace dsalign
