#include "model/units.h"

#include "util/error.h"

namespace dsalign {

size_t unit_of_parameter(const std::string& name, int64_t num_layers) {
  if (name.starts_with("model.embed_tokens.")) return embedding_unit();
  if (name.starts_with("model.norm.") || name.starts_with("lm_head.")) return head_unit(num_layers);
  const std::string prefix = "model.layers.";
  if (name.starts_with(prefix)) {
    const size_t dot = name.find('.', prefix.size());
    const int64_t layer = std::stoll(name.substr(prefix.size(), dot - prefix.size()));
    if (layer >= 0 && layer < num_layers) return layer_unit(layer);
  }
  fail("parameter ", name, " belongs to no unit of a ", num_layers, "-layer decoder");
}

}  // namespace dsalign
