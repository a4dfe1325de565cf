// The GQA decoder of the LlamaForCausalLM family (deepseek-llm, deepseek-coder) in LibTorch.
// Submodules carry the Hugging Face names (model.layers.N.self_attn.q_proj, ...), so
// named_parameters() yields exactly the checkpoint's tensor names.
#pragma once
#include <torch/torch.h>

#include "model/config.h"
#include "model/ops.h"
#include "model/rope.h"
#include "model/units.h"

namespace dsalign {

struct DecoderOptions {
  torch::ScalarType param_dtype = torch::kFloat32;  // weights as stored in memory (master weights)
  // Matmuls and attention run in this dtype. When it differs from param_dtype, forward runs under
  // autocast: fp32 master weights with bf16 compute.
  torch::ScalarType compute_dtype = torch::kFloat32;
  torch::Device device = torch::kCPU;
  bool activation_checkpointing = false;  // recompute each layer in backward, keep only its input
  ops::Kernels kernels;  // model.kernels resolved for `device` (model/kernel_choice)
  // zero3: parameters are built with no storage (full shape, 0 bytes); dist/sharded_units keeps
  // each rank's rows and gathers the rest around their use.
  bool unallocated = false;
};

// How the modules create their parameters: uninitialised (loading 7B weights should not first
// pay for a random init; init_weights() fills them), or unallocated (DecoderOptions::unallocated).
struct ParamFactory {
  torch::TensorOptions options;
  bool unallocated = false;
  torch::Tensor operator()(at::IntArrayRef shape) const;
};

// The padding-free layout of a [B, T] batch (data/varlen), on the device: what varlen flash
// attention takes instead of a mask.
struct VarlenInput {
  torch::Tensor token_index;  // [total] int64: row * T + t of each real token, documents contiguous
  torch::Tensor cu_seqlens;   // [documents + 1] int32
  int64_t max_seqlen = 0;
  bool defined() const { return cu_seqlens.defined(); }
};

// Per forward, shared by every layer: rotary tables and, for packed or padded rows, either the
// mask or (varlen flash attention) the flat layout.
struct AttentionContext {
  RopeTables rope;
  torch::Tensor mask;  // [B, 1, T, T] bool (true = may attend), undefined = plain causal
  VarlenInput varlen;  // when set, attention runs on the flat stream of real tokens (mask unused)
};

// Keys and values of the tokens seen so far, for incremental decoding. Slots are filled left to
// right by CausalLM::forward_cached; a slot that holds padding is never attended to.
struct KVCache {
  std::vector<torch::Tensor> keys, values;  // per layer [B, H_kv, capacity, head_dim], compute dtype
  torch::Tensor real;                       // [B, capacity] bool: the slot holds a real token
  int64_t length = 0;                       // slots filled
};

struct LinearImpl : torch::nn::Module {
  LinearImpl(int64_t in_features, int64_t out_features, bool bias, const ParamFactory& make);
  torch::Tensor forward(const torch::Tensor& x);  // [..., in] -> [..., out]
  torch::Tensor weight;
  torch::Tensor bias;
};
TORCH_MODULE(Linear);

struct RMSNormImpl : torch::nn::Module {
  RMSNormImpl(int64_t dim, double eps, const ParamFactory& make);
  torch::Tensor forward(const torch::Tensor& x, ops::Backend backend);  // [..., D] -> [..., D]
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RMSNorm);

struct AttentionImpl : torch::nn::Module {
  AttentionImpl(const ModelConfig& config, const ParamFactory& make);
  // x: [B, T, D] -> [B, T, D]. With a cache, x's keys and values go to slots
  // [cache->length, cache->length + T) of `layer` and the queries attend to every filled slot.
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& context, const ops::Kernels& kernels,
                        KVCache* cache = nullptr, size_t layer = 0);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t n_head, n_head_kv, head_dim;
};
TORCH_MODULE(Attention);

struct MLPImpl : torch::nn::Module {
  MLPImpl(const ModelConfig& config, const ParamFactory& make);
  torch::Tensor forward(const torch::Tensor& x, ops::Backend backend);  // [B, T, D] -> [B, T, D]
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(MLP);

struct DecoderLayerImpl : torch::nn::Module {
  DecoderLayerImpl(const ModelConfig& config, const ParamFactory& make);
  torch::Tensor forward(const torch::Tensor& x, const AttentionContext& context, const ops::Kernels& kernels,
                        KVCache* cache = nullptr, size_t layer = 0);
  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Attention self_attn{nullptr};
  MLP mlp{nullptr};
};
TORCH_MODULE(DecoderLayer);

// The trunk: embeddings, layers, final norm ("model." in checkpoint names).
struct DecoderTrunkImpl : torch::nn::Module {
  DecoderTrunkImpl(const ModelConfig& config, const ParamFactory& make);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RMSNorm norm{nullptr};
};
TORCH_MODULE(DecoderTrunk);

// What a row of tokens is: ids, their positions, and which document each token belongs to.
struct DecoderInput {
  torch::Tensor input_ids;     // [B, T] int64
  torch::Tensor position_ids;  // [B, T] int64; undefined = 0..T-1 per row
  // [B, T] int64; undefined = one causal document per row. Tokens attend only to earlier tokens
  // with the same id (packed documents); give padding its own id (e.g. -1).
  torch::Tensor document_ids;
  // The same documents as a flat layout, when the batch was collated for varlen attention (CUDA):
  // used instead of the mask where ops::Kernels::attention is fused and the compute dtype is bf16.
  VarlenInput varlen;
  // [B, T, T] bool, true = query t may attend to key s: any pattern (evaluation scores several
  // continuations after one shared context in one row). Takes precedence over document_ids.
  torch::Tensor attention_mask;
};

struct CausalLMImpl : torch::nn::Module {
  CausalLMImpl(const ModelConfig& config, const DecoderOptions& options);

  // -> [B, T, D] the last layer's output, before the final norm
  torch::Tensor trunk(const DecoderInput& input);
  // The head unit on the trunk's output h: fn(final-normed h, lm_head weight), under autocast.
  using HeadFn = std::function<torch::Tensor(const torch::Tensor& normed, const torch::Tensor& lm_head_weight)>;
  torch::Tensor head(const torch::Tensor& h, const HeadFn& fn);
  // -> [B, T, V] logits in the compute dtype
  torch::Tensor forward(const DecoderInput& input);
  // Sum and count of next-token NLL, transformers-style: logits[:, t] predicts labels[:, t + 1];
  // labels == -100 carry no loss. Returns {fp32 scalar sum, int64 scalar count}.
  // target_rows, when the caller has it (collate builds it on the host): [K] int64 on the device,
  // the flat indices b * (T - 1) + t, in order, of the positions whose next label is not -100;
  // with it no device-to-host synchronisation is needed to find them.
  std::pair<torch::Tensor, torch::Tensor> loss_sum(const DecoderInput& input, const torch::Tensor& labels,
                                                   const torch::Tensor& target_rows = {});
  // fp32 [N]: log p(labels[:, t + 1] | tokens up to t) for each position whose next label is not
  // -100, in row-major order. Logits are computed only for those positions.
  torch::Tensor label_log_probs(const DecoderInput& input, const torch::Tensor& labels,
                                const torch::Tensor& target_rows = {});
  // Whether attention takes DecoderInput::varlen (fused attention chosen, a GPU, 16-bit compute,
  // a head size flash supports): what collate() needs to know to build it.
  bool uses_varlen_attention() const;

  // Incremental decoding (no gradients): an empty cache with room for `capacity` tokens per row.
  KVCache new_cache(int64_t batch, int64_t capacity) const;
  // Appends T tokens per row to the cache and returns the fp32 logits [B, V] of the last one.
  // input_ids, position_ids: [B, T] int64; real: [B, T] bool (false = padding, attends only to
  // itself and is invisible to every other token).
  torch::Tensor forward_cached(const torch::Tensor& input_ids, const torch::Tensor& position_ids,
                               const torch::Tensor& real, KVCache& cache);

  torch::Tensor lm_head_weight() const;  // the embedding matrix when tied
  // Loops that run the model (validation, generation) take this many turns: `local`, or with
  // sharded units the largest `local` of any rank (so every rank gathers the same units).
  int64_t turns_in_lockstep(int64_t local) const { return unit_runner ? unit_runner->max_over_ranks(local) : local; }
  void init_weights(uint64_t seed);      // normal(0, initializer_range), norms 1, biases 0

  const ModelConfig config;
  const DecoderOptions options;
  DecoderTrunk model{nullptr};
  Linear lm_head{nullptr};  // null when tie_word_embeddings
  // Set by dist/sharded_units under zero3: every unit runs through it. Null: units run directly.
  std::shared_ptr<UnitRunner> unit_runner;

 private:
  torch::Tensor run_unit(size_t unit, const UnitFn& fn, const torch::Tensor& x, bool recompute);
};
TORCH_MODULE(CausalLM);

// transformers' initialisation for a parameter of this name: norms 1, biases 0, everything else
// normal(0, initializer_range), drawn in fp32 on the CPU generator.
torch::Tensor initial_weight(const std::string& name, const std::vector<int64_t>& shape, double initializer_range,
                             at::Generator& generator);

// Document ids from position ids that restart at 0 at each packed document's start.
torch::Tensor document_ids_from_positions(const torch::Tensor& position_ids);
// For right- or left-padded batches: attention_mask [B, T] of 1/0 -> document ids (pads -1).
torch::Tensor document_ids_from_attention_mask(const torch::Tensor& attention_mask);

}  // namespace dsalign
