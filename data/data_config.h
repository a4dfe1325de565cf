// The recipe's `data` section, parsed once into a typed struct.
#pragma once
#include <string>
#include <vector>

#include "data/records.h"
#include "util/yaml_reader.h"

namespace dsalign {

struct DataSource {
  std::string path;     // JSONL file; relative paths are resolved against the recipe's folder
  double weight = 1.0;  // examples per epoch = weight x the source's examples (fractions drawn at random)
};

enum class Overflow { truncate, drop };

struct DataConfig {
  std::vector<DataSource> sources;
  std::vector<std::string> include_domains;  // empty: every domain
  std::vector<std::string> exclude_domains;  // e.g. [math, code] for DeepSeek's stage 2
  int64_t max_seq_len = 4096;
  Overflow overflow = Overflow::drop;  // longer examples: drop, or truncate (keep the start)
  bool packing = true;                 // pack examples into rows of max_seq_len; else padding-free batches
  int64_t seed = 0;                    // shuffling and weight sampling
  double validation_fraction = 0.0;    // held out, by example, before weights apply
  int64_t epochs = 1;
  std::string chat_template = "auto";  // auto | deepseek-llm | deepseek-coder
  bool train_on_all = false;           // loss on every token, not only the assistant's
  // Which bytes of an assistant turn carry loss: rendered (TRL's: all the template renders after
  // the generation prompt) or end_of_turn (stop after the end-of-turn token).
  ResponseSpan response_span = ResponseSpan::rendered;
  OnError on_error = OnError::fail;    // bad records: fail (naming file:line) or skip and count
  std::string cache_dir;               // token cache; "" = ~/.cache/dsalign/tokens
  int64_t threads = 0;                 // preprocessing threads; 0 = all cores

  // Whether include_domains / exclude_domains keep an example of this domain.
  bool selects_domain(const std::string& domain) const;
};

// Reads `reader` (the `data` mapping) and checks for unknown keys.
DataConfig parse_data_config(YamlReader& reader);

}  // namespace dsalign
