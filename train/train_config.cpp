#include "train/train_config.h"

namespace dsalign {

TrainConfig parse_train_config(YamlReader& r) {
  TrainConfig c;
  auto positive = [&](const char* key, int64_t fallback) {
    int64_t v = r.integer(key, fallback);
    if (v < 1) r.error(key, "must be at least 1, got ", v);
    return v;
  };
  auto non_negative = [&](const char* key, int64_t fallback) {
    int64_t v = r.integer(key, fallback);
    if (v < 0) r.error(key, "must be >= 0, got ", v);
    return v;
  };
  c.micro_batch_size = positive("micro_batch_size", 1);
  c.batch_unit = r.choice("batch_unit", {"sequences", "tokens"}, "sequences") == "sequences" ? TrainConfig::BatchUnit::sequences
                                                                                          : TrainConfig::BatchUnit::tokens;
  c.global_batch_size = positive("global_batch_size", c.micro_batch_size);
  if (c.batch_unit == TrainConfig::BatchUnit::sequences && c.global_batch_size % c.micro_batch_size != 0)
    r.error("global_batch_size", "must be a multiple of micro_batch_size (", c.micro_batch_size, "), got ", c.global_batch_size);
  c.schedule = parse_schedule(r);
  c.beta1 = r.number("beta1", 0.9);
  c.beta2 = r.number("beta2", 0.95);
  for (auto [key, v] : {std::pair<const char*, double>{"beta1", c.beta1}, {"beta2", c.beta2}})
    if (v < 0 || v >= 1) r.error(key, "must be in [0, 1), got ", v);
  c.eps = r.number("eps", 1e-8);
  c.weight_decay = r.number("weight_decay", 0.1);
  if (c.weight_decay < 0) r.error("weight_decay", "must be >= 0");
  c.decay_norms_and_embeddings = r.boolean("decay_norms_and_embeddings", false);
  c.grad_clip = r.number("grad_clip", 1.0);
  if (c.grad_clip < 0) r.error("grad_clip", "must be >= 0 (0 turns clipping off)");
  c.max_steps = non_negative("max_steps", 0);
  c.log_every = positive("log_every", 1);
  c.val_every = non_negative("val_every", 0);
  c.checkpoint_every_steps = non_negative("checkpoint_every_steps", 0);
  c.checkpoint_every_minutes = r.number("checkpoint_every_minutes", 0.0);
  if (c.checkpoint_every_minutes < 0) r.error("checkpoint_every_minutes", "must be >= 0");
  c.keep_last = positive("keep_last", 2);
  c.async_checkpoint = r.boolean("async_checkpoint", true);
  c.on_nonfinite = r.choice("on_nonfinite", {"stop", "skip"}, "stop") == "stop" ? TrainConfig::OnNonFinite::stop
                                                                                 : TrainConfig::OnNonFinite::skip;
  r.finish();
  return c;
}

}  // namespace dsalign
