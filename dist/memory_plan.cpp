#include "dist/memory_plan.h"

#include <sstream>
#include <vector>

#include "model/inspect.h"
#include "util/error.h"

namespace dsalign {
namespace {

struct Shape {
  int64_t rows, cols;
};

// The decoder's parameters as [rows, cols] (1-D norms are [d, 1]).
std::vector<Shape> parameter_shapes(const ModelConfig& c) {
  const int64_t d = c.hidden_size, kv = c.num_key_value_heads * c.head_dim, q = c.num_attention_heads * c.head_dim;
  std::vector<Shape> out = {{c.vocab_size, d}};
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    std::vector<Shape> layer = {{q, d}, {kv, d}, {kv, d}, {d, q}, {c.intermediate_size, d}, {c.intermediate_size, d},
                                {d, c.intermediate_size}, {d, 1}, {d, 1}};
    out.insert(out.end(), layer.begin(), layer.end());
  }
  out.push_back({d, 1});
  if (!c.tie_word_embeddings) out.push_back({c.vocab_size, d});
  return out;
}

int64_t to_int(const std::string& key, const std::string& value) {
  size_t used = 0;
  int64_t v = 0;
  try {
    v = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size() || v < 1) fail("--plan: ", key, "=", value, " (expected a positive integer)");
  return v;
}

std::string gib(double bytes) {
  std::ostringstream out;
  out.precision(1);
  out << std::fixed << bytes / (1024.0 * 1024.0 * 1024.0) << " GiB";
  return out.str();
}

}  // namespace

PlanRequest parse_plan_request(const std::string& spec) {
  PlanRequest r;
  std::istringstream in(spec);
  for (std::string item; std::getline(in, item, ',');) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    const std::string key = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (key == "checkpointing" && eq == std::string::npos) {
      r.checkpointing = true;
    } else if (key == "world") {
      r.world = to_int(key, value);
    } else if (key == "seq") {
      r.seq = to_int(key, value);
    } else if (key == "micro_batch") {
      r.micro_batch = to_int(key, value);
    } else if (key == "strategy") {
      r.strategy = shard_strategy_from_name(value);
    } else {
      fail("--plan: unknown key '", key, "' (expected world, strategy, seq, micro_batch, checkpointing)");
    }
  }
  if (r.strategy == ShardStrategy::none && r.world > 1) r.strategy = ShardStrategy::zero3;  // the default of a multi-rank run
  return r;
}

MemoryPlan plan_memory(const ModelConfig& c, const PlanRequest& r) {
  MemoryPlan p;
  p.checkpointing = r.checkpointing;
  const int64_t N = r.world;
  const bool zero3 = r.strategy == ShardStrategy::zero3;
  const bool sharded_state = r.strategy == ShardStrategy::zero1 || r.strategy == ShardStrategy::zero2 || zero3;
  double psi = 0, shard = 0, largest_layer = 0;
  const std::vector<Shape> shapes = parameter_shapes(c);
  for (const Shape& s : shapes) {
    psi += static_cast<double>(s.rows * s.cols);
    shard += static_cast<double>((s.rows + N - 1) / N * s.cols);
  }
  const ParameterCounts counts = count_parameters(c);
  largest_layer = static_cast<double>(std::max({counts.per_layer, counts.embedding, counts.lm_head}));
  const double mb = r.master_bytes, cb = r.compute_bytes;
  p.weights = mb * (zero3 ? shard : psi);
  // Autocast keeps the compute copy of each weight from its use in forward to backward; zero3
  // holds gathered units instead: two layers (this one, the prefetched next) and lm_head.
  if (cb != mb) p.compute_copies = zero3 ? cb * (2 * static_cast<double>(counts.per_layer) + static_cast<double>(counts.lm_head))
                                         : cb * psi;
  switch (r.strategy) {
    case ShardStrategy::none:
    case ShardStrategy::ddp: p.gradients = mb * psi; break;
    case ShardStrategy::zero1: p.gradients = mb * (psi + shard); break;
    // A micro-batch's full gradient exists until its reduce-scatter (dsalign's zero2 today).
    case ShardStrategy::zero2: p.gradients = mb * (psi + shard); break;
    case ShardStrategy::zero3: p.gradients = mb * (shard + static_cast<double>(counts.per_layer)); break;
  }
  p.optimizer = 8 * (sharded_state ? shard : psi);
  // Saved activations per token and layer: the residual stream (master dtype) at both norms, and
  // in the compute dtype the norms' outputs, q/k/v after RoPE, the attention output, gate, up and
  // their product; plus logits in the compute dtype and fp32 log-softmax and its gradient.
  const double d = static_cast<double>(c.hidden_size), ffn = static_cast<double>(c.intermediate_size);
  const double kv = static_cast<double>(c.num_key_value_heads * c.head_dim);
  const double per_layer = 2 * mb * d + cb * (4 * d + 2 * kv + 3 * ffn);
  const double tokens = static_cast<double>(r.seq * r.micro_batch);
  const double layers = static_cast<double>(c.num_hidden_layers);
  const double per_token = r.checkpointing ? layers * mb * d + per_layer : layers * per_layer;
  p.activations = tokens * (per_token + (cb + 8) * static_cast<double>(c.vocab_size));
  // Each rank of several checkpoints its rows of every tensor whatever the strategy; one, all.
  p.checkpoint_host = (mb + 8) * (N > 1 ? shard : psi);
  // DeepSpeed's estimate_zero{2,3}_model_states_mem_needs without offload (fp16 weights, fp32 Adam).
  const double Nd = static_cast<double>(N);
  if (r.strategy == ShardStrategy::zero3) p.deepspeed = 4 * largest_layer + 18 * psi / Nd;
  else if (r.strategy == ShardStrategy::zero2 || r.strategy == ShardStrategy::zero1) p.deepspeed = 4 * psi + 16 * psi / Nd;
  else p.deepspeed = 16 * psi;
  return p;
}

std::string plan_report(const ModelConfig& c, const PlanRequest& r, const MemoryPlan& p) {
  std::ostringstream out;
  out << "plan                world " << r.world << ", strategy " << shard_strategy_name(r.strategy) << ", seq " << r.seq
      << ", micro_batch " << r.micro_batch << (r.checkpointing ? ", activation checkpointing" : "")
      << "; fp32 master weights, bf16 compute; per rank:\n"
      << "  weights           " << gib(p.weights) << (r.strategy == ShardStrategy::zero3 ? " (1/N shard)" : " (all)") << "\n"
      << "  compute copies    " << gib(p.compute_copies)
      << (r.strategy == ShardStrategy::zero3 ? " (gathered units: two layers and lm_head)" : " (bf16 weights autocast keeps)")
      << "\n"
      << "  gradients         " << gib(p.gradients) << " (peak)\n"
      << "  AdamW moments     " << gib(p.optimizer) << "\n"
      << "  activations       " << gib(p.activations) << " (estimate, one micro-batch)\n"
      << "  total             " << gib(p.total())
      << (r.checkpointing ? " (copies and gradients peak apart: the larger counts)" : "")
      << ": fits an H100 80GB (81559 MiB): " << (p.total() <= 81559.0 * 1024 * 1024 ? "yes" : "no")
      << ", an H200 141GB (143771 MiB): " << (p.total() <= 143771.0 * 1024 * 1024 ? "yes" : "no") << "\n"
      << "  DeepSpeed         " << gib(p.deepspeed) << " of model states ("
      << (r.strategy == ShardStrategy::zero3 ? "4 x largest layer + 18 Psi / N"
          : r.strategy == ShardStrategy::zero1 || r.strategy == ShardStrategy::zero2 ? "4 Psi + 16 Psi / N"
                                                                                     : "16 Psi")
      << ", its estimator without offload)\n"
      << "  checkpoint copy   " << gib(p.checkpoint_host)
      << " of host memory (this rank's weights and AdamW moments, kept for the run with async_checkpoint)\n";
  return out.str();
}

}  // namespace dsalign
