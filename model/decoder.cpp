#include "model/decoder.h"

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <functional>

#include "util/error.h"

namespace dsalign {
namespace {

// Enables autocast to `dtype` on `device` for its lifetime and restores the previous state; the
// cast-weight cache is dropped when the outermost guard exits, as Python's autocast does.
class AutocastGuard {
 public:
  AutocastGuard(c10::DeviceType device, torch::ScalarType dtype)
      : device_(device),
        was_enabled_(at::autocast::is_autocast_enabled(device)),
        previous_dtype_(at::autocast::get_autocast_dtype(device)) {
    at::autocast::set_autocast_enabled(device_, true);
    at::autocast::set_autocast_dtype(device_, dtype);
    at::autocast::increment_nesting();
  }
  ~AutocastGuard() {
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(device_, was_enabled_);
    at::autocast::set_autocast_dtype(device_, previous_dtype_);
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  c10::DeviceType device_;
  bool was_enabled_;
  torch::ScalarType previous_dtype_;
};

// Runs `fn` when `compute` differs from `params`, under autocast to `compute`.
template <typename Fn>
auto with_compute_dtype(const DecoderOptions& o, Fn&& fn) {
  if (o.compute_dtype == o.param_dtype) return fn();
  AutocastGuard guard(o.device.type(), o.compute_dtype);
  return fn();
}

// The residual stream starts in the parameter dtype (autocast leaves embeddings alone), also
// under zero3, whose gathered embedding is in the compute dtype: its rows are then rounded to
// bf16 as FSDP2's param_dtype would round them, but the stream, RoPE and the norms stay fp32 as
// under the other strategies.
torch::Tensor embed_in_param_dtype(torch::nn::EmbeddingImpl* embed, const torch::Tensor& ids, const DecoderOptions& o) {
  return embed->forward(ids).to(o.param_dtype);
}

// Varlen flash attention needs the fused choice, a GPU, 16-bit compute and a head size flash takes.
bool varlen_attention_applies(const DecoderOptions& o, const ModelConfig& c) {
  return o.kernels.attention == ops::Backend::kernels && o.device.is_cuda() &&
         (o.compute_dtype == torch::kBFloat16 || o.compute_dtype == torch::kFloat16) && c.head_dim <= 256 &&
         c.head_dim % 8 == 0;
}

using LayerFn = std::function<torch::Tensor(const torch::Tensor&)>;

// Activation checkpointing: the autograd node that stands for one whole layer. Forward ran
// without a graph; backward re-runs the layer on its saved input with a graph, back-propagates
// the incoming gradient through it (parameter gradients accumulate as usual) and passes on the
// input's gradient.
struct RecomputeLayerBackward : torch::autograd::Node {
  RecomputeLayerBackward(LayerFn fn, torch::Tensor input) : fn_(std::move(fn)), input_(std::move(input)) {}

  torch::autograd::variable_list apply(torch::autograd::variable_list&& grads) override {
    torch::Tensor x = input_.detach().requires_grad_(true);
    torch::Tensor y;
    {
      torch::AutoGradMode enable(true);
      y = fn_(x);
    }
    torch::autograd::backward({y}, {grads[0]});
    torch::Tensor grad = x.grad();
    fn_ = nullptr;
    input_ = torch::Tensor();
    return {grad};
  }
  std::string name() const override { return "RecomputeLayerBackward"; }

 private:
  LayerFn fn_;
  torch::Tensor input_;
};

torch::Tensor checkpointed(LayerFn fn, const torch::Tensor& x) {
  torch::Tensor y;
  {
    torch::NoGradGuard no_grad;
    y = fn(x);
  }
  if (!x.requires_grad() && !torch::GradMode::is_enabled()) return y;
  auto node = std::shared_ptr<RecomputeLayerBackward>(new RecomputeLayerBackward(fn, x), torch::autograd::deleteNode);
  node->set_next_edges(torch::autograd::collect_next_edges(x));
  torch::autograd::set_history(y, node);
  return y;
}

torch::Tensor causal_document_mask(const torch::Tensor& document_ids) {
  const int64_t T = document_ids.size(1);
  torch::Tensor same = document_ids.unsqueeze(2) == document_ids.unsqueeze(1);  // [B, T, T]
  torch::Tensor causal = torch::ones({T, T}, document_ids.options().dtype(torch::kBool)).tril();
  return same.logical_and(causal).unsqueeze(1);
}

}  // namespace

torch::Tensor ParamFactory::operator()(at::IntArrayRef shape) const {
  if (!unallocated) return torch::empty(shape, options);
  // Full-size metadata over a storage of 0 bytes: nothing is allocated until it is gathered.
  torch::Tensor t = torch::empty({0}, options);
  t.unsafeGetTensorImpl()->set_sizes_contiguous(shape);
  return t;
}

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool with_bias, const ParamFactory& make) {
  weight = register_parameter("weight", make({out_features, in_features}));
  if (with_bias) bias = register_parameter("bias", make({out_features}));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  return torch::nn::functional::linear(x, weight, bias);
}

RMSNormImpl::RMSNormImpl(int64_t dim, double eps_, const ParamFactory& make) : eps(eps_) {
  weight = register_parameter("weight", make({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x, ops::Backend backend) {
  return ops::rms_norm(x, weight, eps, backend);
}

AttentionImpl::AttentionImpl(const ModelConfig& c, const ParamFactory& make)
    : n_head(c.num_attention_heads), n_head_kv(c.num_key_value_heads), head_dim(c.head_dim) {
  q_proj = register_module("q_proj", Linear(c.hidden_size, n_head * head_dim, c.attention_bias, make));
  k_proj = register_module("k_proj", Linear(c.hidden_size, n_head_kv * head_dim, c.attention_bias, make));
  v_proj = register_module("v_proj", Linear(c.hidden_size, n_head_kv * head_dim, c.attention_bias, make));
  o_proj = register_module("o_proj", Linear(n_head * head_dim, c.hidden_size, c.attention_bias, make));
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const AttentionContext& context, const ops::Kernels& kernels,
                                     KVCache* cache, size_t layer) {
  const int64_t B = x.size(0), T = x.size(1);
  // [B, T, H * hd] -> [B, H, T, hd]
  torch::Tensor q = q_proj(x).view({B, T, n_head, head_dim}).transpose(1, 2);
  torch::Tensor k = k_proj(x).view({B, T, n_head_kv, head_dim}).transpose(1, 2);
  torch::Tensor v = v_proj(x).view({B, T, n_head_kv, head_dim}).transpose(1, 2);
  std::tie(q, k) = ops::rope_qk(q, k, context.rope.cos, context.rope.sin, kernels.rope);
  if (cache) {
    const int64_t start = cache->length;
    torch::Tensor& keys = cache->keys[layer];
    torch::Tensor& values = cache->values[layer];
    keys.narrow(2, start, T).copy_(k);
    values.narrow(2, start, T).copy_(v);
    k = keys.narrow(2, 0, start + T);
    v = values.narrow(2, 0, start + T);
  }
  const double scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  if (context.varlen.defined() && !cache) {
    // The real tokens as one flat stream ([B, H, T, hd] -> [total, H, hd]); each document attends
    // only within itself; K/V keep their own (fewer) heads. Padding rows get zeros, which no
    // label reads.
    const torch::Tensor& index = context.varlen.token_index;
    // One 16-bit dtype for all three (the reference RoPE with fp32 tables returns fp32 q and k).
    auto flat = [&](const torch::Tensor& t) {
      return t.transpose(1, 2).reshape({B * T, t.size(1), head_dim}).index_select(0, index).to(v.scalar_type());
    };
    torch::Tensor attended = ops::varlen_attention(flat(q), flat(k), flat(v), context.varlen.cu_seqlens,
                                                   context.varlen.max_seqlen, scale);
    torch::Tensor rows = torch::zeros({B * T, n_head, head_dim}, attended.options()).index_copy(0, index, attended);
    return o_proj(rows.view({B, T, n_head * head_dim}));
  }
  torch::Tensor out;
  if (context.mask.defined()) {
    // The memory-efficient kernels take a mask but not grouped heads: share K/V explicitly.
    if (n_head != n_head_kv) {
      k = k.repeat_interleave(n_head / n_head_kv, 1);
      v = v.repeat_interleave(n_head / n_head_kv, 1);
    }
    out = at::scaled_dot_product_attention(q, k, v, context.mask, 0.0, false, scale);
  } else {
    out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/true, scale,
                                           /*enable_gqa=*/n_head != n_head_kv);
  }
  return o_proj(out.transpose(1, 2).reshape({B, T, n_head * head_dim}));
}

MLPImpl::MLPImpl(const ModelConfig& c, const ParamFactory& make) {
  gate_proj = register_module("gate_proj", Linear(c.hidden_size, c.intermediate_size, c.mlp_bias, make));
  up_proj = register_module("up_proj", Linear(c.hidden_size, c.intermediate_size, c.mlp_bias, make));
  down_proj = register_module("down_proj", Linear(c.intermediate_size, c.hidden_size, c.mlp_bias, make));
}

torch::Tensor MLPImpl::forward(const torch::Tensor& x, ops::Backend backend) {
  return down_proj(ops::swiglu(gate_proj(x), up_proj(x), backend));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& c, const ParamFactory& make) {
  self_attn = register_module("self_attn", Attention(c, make));
  mlp = register_module("mlp", MLP(c, make));
  input_layernorm = register_module("input_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, make));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(c.hidden_size, c.rms_norm_eps, make));
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const AttentionContext& context,
                                        const ops::Kernels& kernels, KVCache* cache, size_t layer) {
  torch::Tensor h = x + self_attn(input_layernorm(x, kernels.rms_norm), context, kernels, cache, layer);
  return h + mlp(post_attention_layernorm(h, kernels.rms_norm), kernels.swiglu);
}

DecoderTrunkImpl::DecoderTrunkImpl(const ModelConfig& c, const ParamFactory& make) {
  embed_tokens = register_module(
      "embed_tokens", torch::nn::Embedding(torch::nn::EmbeddingOptions(c.vocab_size, c.hidden_size)._weight(
                          make({c.vocab_size, c.hidden_size}))));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(DecoderLayer(c, make));
  norm = register_module("norm", RMSNorm(c.hidden_size, c.rms_norm_eps, make));
}

CausalLMImpl::CausalLMImpl(const ModelConfig& c, const DecoderOptions& o) : config(c), options(o) {
  validate(c, "model config");
  const ParamFactory make{torch::TensorOptions().dtype(o.param_dtype).device(o.device), o.unallocated};
  model = register_module("model", DecoderTrunk(c, make));
  if (!c.tie_word_embeddings) lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false, make));
}

torch::Tensor CausalLMImpl::lm_head_weight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

torch::Tensor CausalLMImpl::run_unit(size_t unit, const UnitFn& fn, const torch::Tensor& x, bool recompute) {
  if (unit_runner) return unit_runner->run(unit, fn, x, recompute);
  return recompute ? checkpointed(fn, x) : fn(x);
}

torch::Tensor CausalLMImpl::trunk(const DecoderInput& input) {
  const torch::Tensor& ids = input.input_ids;
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == torch::kInt64, "input_ids must be [B, T] int64, got ",
              ids.sizes(), " ", ids.scalar_type());
  const int64_t B = ids.size(0), T = ids.size(1);
  torch::Tensor positions = input.position_ids.defined()
                                ? input.position_ids
                                : torch::arange(T, ids.options()).unsqueeze(0).expand({B, T});
  TORCH_CHECK(positions.sizes() == ids.sizes(), "position_ids ", positions.sizes(), " must match input_ids ", ids.sizes());
  const DecoderOptions o = options;
  auto embed = model->embed_tokens.ptr();
  torch::Tensor h = run_unit(embedding_unit(), [embed, o](const torch::Tensor& x) { return embed_in_param_dtype(embed.get(), x, o); },
                             ids, false);
  AttentionContext context{rope_tables(config, positions, h.scalar_type()), torch::Tensor(), VarlenInput()};
  if (input.attention_mask.defined()) {
    TORCH_CHECK(input.attention_mask.dim() == 3 && input.attention_mask.size(0) == B && input.attention_mask.size(1) == T &&
                    input.attention_mask.size(2) == T && input.attention_mask.scalar_type() == torch::kBool,
                "attention_mask must be [B, T, T] bool, got ", input.attention_mask.sizes(), " ",
                input.attention_mask.scalar_type());
    context.mask = input.attention_mask.unsqueeze(1);
  } else if (input.varlen.defined() && varlen_attention_applies(options, config)) {
    context.varlen = input.varlen;  // documents are the flat layout's sequences: no mask to build
  } else if (input.document_ids.defined()) {
    TORCH_CHECK(input.document_ids.sizes() == ids.sizes(), "document_ids ", input.document_ids.sizes(),
                " must match input_ids ", ids.sizes());
    context.mask = causal_document_mask(input.document_ids);
  }
  const bool recompute = options.activation_checkpointing && torch::GradMode::is_enabled();
  int64_t index = 0;
  for (const auto& module : *model->layers) {
    auto layer = module->as<DecoderLayerImpl>();
    // Captured by value: with recompute the function runs again in backward, after this returns.
    h = run_unit(
        layer_unit(index++),
        [layer, context, o](const torch::Tensor& x) {
          return with_compute_dtype(o, [&] { return layer->forward(x, context, o.kernels); });
        },
        h, recompute);
  }
  return h;
}

torch::Tensor CausalLMImpl::head(const torch::Tensor& h, const HeadFn& fn) {
  // Not recomputed, so `fn` (and what it refers to) is only used inside this call and its backward.
  return run_unit(
      head_unit(config.num_hidden_layers),
      [this, &fn](const torch::Tensor& x) {
        return with_compute_dtype(options, [&] { return fn(model->norm(x, options.kernels.rms_norm), lm_head_weight()); });
      },
      h, false);
}

torch::Tensor CausalLMImpl::forward(const DecoderInput& input) {
  return head(trunk(input), [](const torch::Tensor& normed, const torch::Tensor& weight) {
    return torch::nn::functional::linear(normed, weight);
  });
}

namespace {

// The positions ([B * (T - 1)] flat) whose next label carries loss: given, or found (a sync on GPU).
torch::Tensor loss_positions(const torch::Tensor& targets, const torch::Tensor& given) {
  return given.defined() ? given : (targets.reshape({-1}) != ops::kIgnoreIndex).nonzero().squeeze(1);
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> CausalLMImpl::loss_sum(const DecoderInput& input, const torch::Tensor& labels,
                                                               const torch::Tensor& target_rows) {
  TORCH_CHECK(labels.sizes() == input.input_ids.sizes(), "labels ", labels.sizes(), " must match input_ids ",
              input.input_ids.sizes());
  const int64_t T = labels.size(1);
  torch::Tensor targets = labels.narrow(1, 1, T - 1).reshape({-1});
  torch::Tensor count = (targets != ops::kIgnoreIndex).sum();
  torch::Tensor sum = head(trunk(input), [&](const torch::Tensor& normed, const torch::Tensor& weight) {
    // In the compute dtype, as autocast would give the reference's matmul (the fused op casts nothing).
    torch::Tensor hidden = normed.narrow(1, 0, T - 1).reshape({-1, normed.size(2)}).to(options.compute_dtype);
    if (options.kernels.cross_entropy == ops::Backend::reference)
      return ops::linear_cross_entropy_sum(hidden, weight, targets, ops::Backend::reference);
    // Only the rows that carry loss reach the fused loss.
    torch::Tensor rows = loss_positions(targets, target_rows);
    return ops::linear_cross_entropy_sum(hidden.index_select(0, rows), weight, targets.index_select(0, rows),
                                         ops::Backend::kernels);
  });
  return {sum, count};
}

torch::Tensor CausalLMImpl::label_log_probs(const DecoderInput& input, const torch::Tensor& labels,
                                            const torch::Tensor& target_rows) {
  TORCH_CHECK(labels.sizes() == input.input_ids.sizes(), "labels ", labels.sizes(), " must match input_ids ",
              input.input_ids.sizes());
  const int64_t T = labels.size(1);
  torch::Tensor targets = labels.narrow(1, 1, T - 1).reshape({-1});
  torch::Tensor rows = loss_positions(targets, target_rows);
  return head(trunk(input), [&](const torch::Tensor& normed, const torch::Tensor& weight) {
    torch::Tensor hidden = normed.narrow(1, 0, T - 1).reshape({-1, normed.size(2)}).index_select(0, rows);
    return ops::linear_log_probs(hidden.to(options.compute_dtype), weight, targets.index_select(0, rows),
                                 options.kernels.cross_entropy);
  });
}

bool CausalLMImpl::uses_varlen_attention() const { return varlen_attention_applies(options, config); }

KVCache CausalLMImpl::new_cache(int64_t batch, int64_t capacity) const {
  const ModelConfig& c = config;
  auto tensor_options = torch::TensorOptions().dtype(options.compute_dtype).device(options.device);
  KVCache cache;
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    cache.keys.push_back(torch::zeros({batch, c.num_key_value_heads, capacity, c.head_dim}, tensor_options));
    cache.values.push_back(torch::zeros({batch, c.num_key_value_heads, capacity, c.head_dim}, tensor_options));
  }
  cache.real = torch::zeros({batch, capacity}, tensor_options.dtype(torch::kBool));
  return cache;
}

torch::Tensor CausalLMImpl::forward_cached(const torch::Tensor& ids, const torch::Tensor& positions,
                                           const torch::Tensor& real, KVCache& cache) {
  torch::NoGradGuard no_grad;
  const int64_t B = ids.size(0), T = ids.size(1), start = cache.length;
  TORCH_CHECK(positions.sizes() == ids.sizes() && real.sizes() == ids.sizes(), "position_ids and real must match input_ids");
  TORCH_CHECK(!cache.keys.empty() && cache.real.size(0) == B, "the cache was made for another batch size");
  TORCH_CHECK(start + T <= cache.real.size(1), "the cache holds ", cache.real.size(1), " tokens; ", start + T, " needed");
  cache.real.narrow(1, start, T).copy_(real);
  // Query i (slot start + i) sees the real slots up to its own, and always itself, so a padding
  // query has one finite attention row instead of none.
  torch::Tensor slots = torch::arange(start + T, ids.options());
  torch::Tensor query_slots = (slots.narrow(0, start, T)).unsqueeze(1);             // [T, 1]
  torch::Tensor visible = cache.real.narrow(1, 0, start + T).unsqueeze(1)            // [B, 1, S]
                              .logical_and(slots.unsqueeze(0) <= query_slots)         // [B, T, S]
                              .logical_or(slots.unsqueeze(0) == query_slots);
  const DecoderOptions& o = options;
  auto embed = model->embed_tokens.ptr();
  torch::Tensor h = run_unit(embedding_unit(), [embed, o](const torch::Tensor& x) { return embed_in_param_dtype(embed.get(), x, o); },
                             ids, false);
  AttentionContext context{rope_tables(config, positions, h.scalar_type()), visible.unsqueeze(1)};
  size_t index = 0;
  for (const auto& module : *model->layers) {
    auto layer = module->as<DecoderLayerImpl>();
    const size_t slot = index++;
    h = run_unit(
        layer_unit(static_cast<int64_t>(slot)),
        [&](const torch::Tensor& x) { return with_compute_dtype(o, [&] { return layer->forward(x, context, o.kernels, &cache, slot); }); },
        h, false);
  }
  torch::Tensor logits = head(h.narrow(1, T - 1, 1), [](const torch::Tensor& normed, const torch::Tensor& weight) {
    return torch::nn::functional::linear(normed, weight);
  });
  cache.length += T;
  return logits.squeeze(1).to(torch::kFloat32);
}

void CausalLMImpl::init_weights(uint64_t seed) {
  torch::NoGradGuard no_grad;
  // Draw on a CPU generator so the same seed gives the same weights on any device.
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (auto& item : named_parameters())
    item.value().copy_(initial_weight(item.key(), item.value().sizes().vec(), config.initializer_range, generator));
}

torch::Tensor initial_weight(const std::string& name, const std::vector<int64_t>& shape, double initializer_range,
                             at::Generator& generator) {
  if (name.ends_with("norm.weight")) return torch::ones(shape, torch::kFloat32);
  if (name.ends_with(".bias")) return torch::zeros(shape, torch::kFloat32);
  torch::Tensor draw = torch::empty(shape, torch::kFloat32);
  draw.normal_(0.0, initializer_range, generator);
  return draw;
}

torch::Tensor document_ids_from_positions(const torch::Tensor& position_ids) {
  return (position_ids == 0).to(torch::kInt64).cumsum(1);
}

torch::Tensor document_ids_from_attention_mask(const torch::Tensor& attention_mask) {
  return torch::where(attention_mask.to(torch::kBool), torch::zeros_like(attention_mask, torch::kInt64),
                      torch::full_like(attention_mask, -1, torch::kInt64));
}

}  // namespace dsalign
