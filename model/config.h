// ModelConfig: the decoder's shape and numerics, parsed once from a Hugging Face config.json
// (LlamaForCausalLM, as deepseek-llm and deepseek-coder ship it) and validated.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace dsalign {

enum class RopeScalingType { none, linear, dynamic, llama3 };

struct RopeScaling {
  RopeScalingType type = RopeScalingType::none;
  double factor = 1.0;
  // llama3 only
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 0;
};

struct ModelConfig {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t num_key_value_heads = 0;  // defaults to num_attention_heads
  int64_t head_dim = 0;             // defaults to hidden_size / num_attention_heads
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 4096;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool attention_bias = false;
  bool mlp_bias = false;
  double initializer_range = 0.02;
  std::string torch_dtype = "bfloat16";  // what the checkpoint stores; informational
  // Special tokens; generation_config.json wins over config.json (deepseek-llm's config.json
  // says 1/2 while its tokenizer and generation_config.json say 100000/100001).
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  int64_t pad_token_id = -1;

  int64_t kv_groups() const { return num_attention_heads / num_key_value_heads; }
};

// Parses a config.json object; `source` names the file in error messages.
ModelConfig parse_model_config(const nlohmann::json& config, const std::string& source);
// Reads <dir>/config.json and, when present, <dir>/generation_config.json. `path` may also be a
// config.json file itself.
ModelConfig load_model_config(const std::filesystem::path& path);
// Throws Error naming the offending key when the shape is inconsistent.
void validate(const ModelConfig& config, const std::string& source);

// config.json as transformers writes it for LlamaForCausalLM.
nlohmann::json to_hf_config_json(const ModelConfig& config, const std::string& torch_dtype);
nlohmann::json to_generation_config_json(const ModelConfig& config);

// Named shapes: the published DeepSeek models and tiny ones for tests.
std::optional<ModelConfig> model_preset(const std::string& name);
std::vector<std::string> model_preset_names();

const char* rope_scaling_name(RopeScalingType type);

}  // namespace dsalign
