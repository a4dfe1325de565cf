#include "dist/dist_config.h"

#include "util/error.h"

namespace dsalign {

ShardStrategy shard_strategy_from_name(const std::string& name) {
  if (name == "none") return ShardStrategy::none;
  if (name == "ddp") return ShardStrategy::ddp;
  if (name == "zero1") return ShardStrategy::zero1;
  if (name == "zero2") return ShardStrategy::zero2;
  if (name == "zero3") return ShardStrategy::zero3;
  fail("unknown strategy '", name, "' (expected none, ddp, zero1, zero2 or zero3)");
}

const char* shard_strategy_name(ShardStrategy s) {
  switch (s) {
    case ShardStrategy::none: return "none";
    case ShardStrategy::ddp: return "ddp";
    case ShardStrategy::zero1: return "zero1";
    case ShardStrategy::zero2: return "zero2";
    case ShardStrategy::zero3: return "zero3";
  }
  return "?";
}

DistConfig parse_dist_config(YamlReader& r) {
  DistConfig c;
  c.file = r.file();
  const std::string strategy = r.choice("strategy", {"auto", "none", "ddp", "zero1", "zero2", "zero3"}, "auto");
  if (strategy != "auto") c.strategy = shard_strategy_from_name(strategy);
  const bool reshard_given = r.has("reshard_after_forward");
  const bool reshard = r.boolean("reshard_after_forward", true);
  if (reshard_given) c.reshard_after_forward = reshard;
  c.prefetch = r.boolean("prefetch", true);
  c.timeout_minutes = r.number("timeout_minutes", 30.0);
  if (!(c.timeout_minutes > 0)) r.error("timeout_minutes", c.timeout_minutes, " (expected minutes > 0)");
  r.finish();
  return c;
}

ShardStrategy resolve_strategy(const DistConfig& c, int64_t world_size) {
  if (c.reshard_after_forward && c.strategy.value_or(ShardStrategy::zero3) != ShardStrategy::zero3)
    fail(c.file, ": dist.reshard_after_forward applies to strategy zero3 only");
  // One rank shards nothing: a recipe written for 8 GPUs runs unchanged as one process.
  if (world_size == 1) return ShardStrategy::none;
  ShardStrategy s = c.strategy.value_or(ShardStrategy::zero3);
  if (s == ShardStrategy::none)
    fail(c.file, ": dist.strategy: none, but this run has ", world_size, " ranks (use ddp, or launch one process)");
  return s;
}

}  // namespace dsalign
