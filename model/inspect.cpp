#include "model/inspect.h"

#include <sstream>

#include "util/files.h"

namespace dsalign {

ParameterCounts count_parameters(const ModelConfig& c) {
  ParameterCounts p;
  const int64_t d = c.hidden_size, q = c.num_attention_heads * c.head_dim, kv = c.num_key_value_heads * c.head_dim;
  const int64_t attn = d * q + 2 * d * kv + q * d + (c.attention_bias ? q + 2 * kv + d : 0);
  const int64_t mlp = 3 * d * c.intermediate_size + (c.mlp_bias ? 2 * c.intermediate_size + d : 0);
  p.per_layer = attn + mlp + 2 * d;
  p.embedding = c.vocab_size * d;
  p.lm_head = c.tie_word_embeddings ? 0 : c.vocab_size * d;
  p.final_norm = d;
  p.total = p.embedding + c.num_hidden_layers * p.per_layer + p.final_norm + p.lm_head;
  p.non_embedding = p.total - p.embedding;
  return p;
}

double training_flops_per_token(const ModelConfig& c, int64_t seq_len) {
  ParameterCounts p = count_parameters(c);
  double matmul_params = static_cast<double>(p.non_embedding) + (c.tie_word_embeddings ? static_cast<double>(p.embedding) : 0.0);
  return 6.0 * matmul_params + 6.0 * static_cast<double>(c.num_hidden_layers) * c.hidden_size * static_cast<double>(seq_len);
}

double paper_flops_per_token(const ModelConfig& c, int64_t seq_len) {
  const double n = static_cast<double>(c.num_hidden_layers), d = static_cast<double>(c.hidden_size);
  return 72.0 * n * d * d + 12.0 * n * d * static_cast<double>(seq_len);
}

TrainingMemory training_memory(const ModelConfig& c, int master_bytes) {
  const double n = static_cast<double>(count_parameters(c).total);
  return {n * master_bytes, n * master_bytes, n * 8.0};
}

namespace {
std::string billions(int64_t n) {
  char buf[64];
  if (n >= 1000000000) std::snprintf(buf, sizeof buf, "%lld (%.2fB)", static_cast<long long>(n), n / 1e9);
  else std::snprintf(buf, sizeof buf, "%lld (%.2fM)", static_cast<long long>(n), n / 1e6);
  return buf;
}
}  // namespace

std::string inspect_report(const ModelConfig& c, int64_t seq_len) {
  std::ostringstream out;
  ParameterCounts p = count_parameters(c);
  out << "architecture        LlamaForCausalLM (GQA decoder, RMSNorm, RoPE, SwiGLU)\n"
      << "layers              " << c.num_hidden_layers << "\n"
      << "hidden / ffn        " << c.hidden_size << " / " << c.intermediate_size << "\n"
      << "heads               " << c.num_attention_heads << " query, " << c.num_key_value_heads << " key/value ("
      << (c.num_attention_heads == c.num_key_value_heads ? std::string("MHA")
                                                         : "GQA " + std::to_string(c.kv_groups()) + ":1")
      << "), head_dim " << c.head_dim << "\n"
      << "vocabulary          " << c.vocab_size << (c.tie_word_embeddings ? " (tied embeddings)" : " (untied lm_head)") << "\n"
      << "rope                theta " << c.rope_theta << ", scaling " << rope_scaling_name(c.rope_scaling.type);
  if (c.rope_scaling.type != RopeScalingType::none) out << " x" << c.rope_scaling.factor;
  out << ", max positions " << c.max_position_embeddings << "\n"
      << "rms_norm_eps        " << c.rms_norm_eps << "\n"
      << "bos / eos           " << c.bos_token_id << " / ";
  for (size_t i = 0; i < c.eos_token_ids.size(); ++i) out << (i ? "," : "") << c.eos_token_ids[i];
  out << "\n\nparameters          " << billions(p.total) << "\n"
      << "  embedding         " << billions(p.embedding) << "\n"
      << "  non-embedding     " << billions(p.non_embedding) << " (lm_head included)\n"
      << "  per layer         " << billions(p.per_layer) << "\n";
  char buf[160];
  std::snprintf(buf, sizeof buf, "\nFLOPs/token @ seq %lld\n  paper M (Eq. 2)   %.4g  (72 n d^2 + 12 n d l, non-embedding)\n"
                "  training (MFU)    %.4g  (6 N + 6 n d l, N incl. lm_head)\n",
                static_cast<long long>(seq_len), paper_flops_per_token(c, seq_len), training_flops_per_token(c, seq_len));
  out << buf << "\nfull fine-tuning memory, AdamW, activations excluded\n";
  struct Row {
    const char* name;
    int bytes;
  };
  for (Row r : {Row{"fp32 master weights (bf16 compute)", 4}, Row{"bf16 weights and gradients", 2}}) {
    TrainingMemory m = training_memory(c, r.bytes);
    out << "  " << r.name << ": weights " << human_bytes(m.weights) << " + gradients " << human_bytes(m.gradients)
        << " + AdamW fp32 moments " << human_bytes(m.optimizer) << " = " << human_bytes(m.total()) << "\n";
  }
  return out.str();
}

}  // namespace dsalign
