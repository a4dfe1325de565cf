// A recipe: YAML plus command-line overrides (the input's lines "#= a.b=value", which YAML reads
// as comments), through every LibTorch-free section reader: run, model, data, train, dist and
// monitor.repetition.
#include <sstream>

#include "dist/dist_config.h"
#include "eval/repetition.h"
#include "fuzz/fuzz_input.h"
#include "train/recipe_file.h"
#include "train/recipe_sections.h"
#include "train/train_config.h"
#include "util/yaml_reader.h"

using namespace dsalign;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = fuzz::as_string(data, size);
  std::vector<std::string> overrides;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind("#= ", 0) == 0) overrides.push_back(line.substr(3));
  const auto file = fuzz::write_file("recipe.yaml", text);
  fuzz::accept_errors([&] {
    RecipeFile recipe = load_recipe(file, overrides);
    YamlReader root(recipe.root, "", file.string());
    YamlReader run = root.child("run");
    parse_run_section(run, file.parent_path(), "fuzz");
    YamlReader model = root.child("model");
    parse_model_section(model, file.parent_path());
    YamlReader data_section = root.child("data");
    parse_data_section(data_section, file.parent_path());
    YamlReader train = root.child("train");
    parse_train_config(train);
    YamlReader dist = root.child("dist");
    parse_dist_config(dist);
    YamlReader monitor = root.child("monitor");
    if (monitor.has("repetition")) {
      YamlReader repetition = monitor.child("repetition");
      parse_repetition_eval_config(repetition, file.parent_path());
    }
    recipe.dump();
  });
  return 0;
}
