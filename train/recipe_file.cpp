#include "train/recipe_file.h"

#include "util/yaml_reader.h"

#include <sstream>

#include "util/error.h"
#include "util/files.h"

namespace dsalign {

std::string RecipeFile::dump() const {
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

namespace {

// `part` as an index into `list`, for an override that walks into a list.
size_t list_index(const std::string& part, const YAML::Node& list, const std::string& assignment) {
  size_t index = 0;
  try {
    size_t used = 0;
    index = std::stoul(part, &used);
    if (used != part.size()) throw std::invalid_argument(part);
  } catch (const std::exception&) {
    fail("override '", assignment, "': '", part, "' must be a list index");
  }
  if (index >= list.size()) fail("override '", assignment, "': index ", index, " is past the list's ", list.size(), " items");
  return index;
}

}  // namespace

void apply_override(YAML::Node& root, const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    fail("override '", assignment, "': expected key.path=value (e.g. train.lr=2e-5)");
  std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  std::vector<std::string> parts;
  std::istringstream in(key);
  for (std::string part; std::getline(in, part, '.');) {
    if (part.empty()) fail("override '", assignment, "': empty key segment");
    parts.push_back(part);
  }
  YAML::Node parsed;
  try {
    parsed = YAML::Load(value);
  } catch (const YAML::Exception& e) {
    fail("override '", assignment, "': value is not valid YAML: ", e.msg);
  }
  // Walk with fresh handles: assigning to a yaml-cpp Node rebinds it, so keep node references
  // through the parent.
  std::vector<YAML::Node> chain{root};
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    YAML::Node current = chain.back();
    const std::string& p = parts[i];
    if (current.IsSequence()) {
      chain.push_back(current[list_index(p, current, assignment)]);
    } else {
      if (current.IsScalar()) fail("override '", assignment, "': '", parts[i - 1], "' is not a mapping");
      if (!current[p]) current[p] = YAML::Node(YAML::NodeType::Map);
      chain.push_back(current[p]);
    }
  }
  YAML::Node parent = chain.back();
  const std::string& last = parts.back();
  if (parent.IsScalar()) fail("override '", assignment, "': '", parts[parts.size() - 2], "' is not a mapping");
  if (parent.IsSequence()) {
    parent[list_index(last, parent, assignment)] = parsed;
  } else {
    parent[last] = parsed;
  }
}

RecipeFile load_recipe(const std::filesystem::path& path, const std::vector<std::string>& overrides) {
  if (!is_existing_file(path)) fail(path.string(), ": recipe not found");
  RecipeFile recipe;
  recipe.path = path;
  try {
    recipe.root = YAML::Load(read_text_file(path));
  } catch (const YAML::Exception& e) {
    fail(path.string(), ":", e.mark.line + 1, ":", e.mark.column + 1, ": YAML syntax error: ", e.msg);
  }
  check_yaml_tree(recipe.root, path.string());
  if (!recipe.root.IsMap()) fail(path.string(), ": a recipe is a mapping of sections (run, model, data, train, ...)");
  for (const auto& o : overrides) apply_override(recipe.root, o);
  if (!overrides.empty()) check_yaml_tree(recipe.root, path.string() + " with its overrides");
  return recipe;
}

}  // namespace dsalign
