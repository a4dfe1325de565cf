// The recipe's `dist` section: how training is spread over the ranks of a run. Parsed once,
// validated with errors that name the key.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "util/yaml_reader.h"

namespace dsalign {

// What each rank keeps of the model state (ZeRO's stages; FSDP2 is zero3).
enum class ShardStrategy {
  none,   // one process
  ddp,    // replicated parameters, gradients and AdamW state; gradients all-reduced
  zero1,  // AdamW state sharded
  zero2,  // AdamW state and gradients sharded (reduce-scatter)
  zero3,  // also the parameters: each unit gathered around its use
};

ShardStrategy shard_strategy_from_name(const std::string& name);  // Error lists the names
const char* shard_strategy_name(ShardStrategy s);

struct DistConfig {
  std::optional<ShardStrategy> strategy;  // unset (strategy: auto): see resolve_strategy
  std::optional<bool> reshard_after_forward;  // zero3 only (default true)
  bool prefetch = true;                   // gather the next unit while this one computes
  double timeout_minutes = 30;            // every collective; a dead peer ends the run after this
  std::string file;                       // the recipe, for errors
};

DistConfig parse_dist_config(YamlReader& dist);

// The strategy for a run of `world_size` ranks: none for one rank (whatever the recipe says, so a
// recipe written for 8 GPUs runs as one process); otherwise the recipe's, or zero3. Errors name
// the key: none with several ranks, reshard_after_forward without zero3.
ShardStrategy resolve_strategy(const DistConfig& config, int64_t world_size);

}  // namespace dsalign
