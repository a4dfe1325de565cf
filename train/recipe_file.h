// A recipe file: YAML, plus command-line overrides `a.b.c=value` applied before anything is
// parsed, so every section reader sees one resolved tree; that tree is what the run directory's
// config.yaml records.
#pragma once
#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <string>
#include <vector>

namespace dsalign {

struct RecipeFile {
  std::filesystem::path path;  // the recipe, for messages and to resolve relative paths
  YAML::Node root;             // resolved: file + overrides
  std::string dump() const;    // YAML text of the resolved tree
};

// Reads the file (an Error names it on a YAML syntax error, with line and column) and applies
// overrides like `train.lr=2e-5` or `data.sources.0.weight=0.5`; values are parsed as YAML
// (numbers, booleans, lists).
RecipeFile load_recipe(const std::filesystem::path& path, const std::vector<std::string>& overrides);

// Applies one `a.b.c=value` override; `where` names it in errors.
void apply_override(YAML::Node& root, const std::string& assignment);

}  // namespace dsalign
