#include "model/config.h"

#include <cmath>
#include <cstdint>

#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace {

using nlohmann::json;

const json* find_key(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return nullptr;
  return &*it;
}

int64_t get_int(const json& obj, const char* key, const std::string& source, std::optional<int64_t> fallback) {
  const json* v = find_key(obj, key);
  if (!v) {
    if (fallback) return *fallback;
    fail(source, ": missing key '", key, "' (expected an integer)");
  }
  if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail(source, ": key '", key, "' is ", v->dump(), ", too large for an integer");
  if (v->is_number_integer()) return v->get<int64_t>();
  // 4096.0 is an integer; 7.5e61 and 0.5 are not (and casting 7.5e61 would be undefined).
  if (v->is_number_float()) {
    const double d = v->get<double>();
    if (std::floor(d) == d && std::abs(d) < 9.0e18) return static_cast<int64_t>(d);
  }
  fail(source, ": key '", key, "' must be an integer, got ", v->dump().substr(0, 40));
}

double get_double(const json& obj, const char* key, const std::string& source, std::optional<double> fallback) {
  const json* v = find_key(obj, key);
  if (!v) {
    if (fallback) return *fallback;
    fail(source, ": missing key '", key, "' (expected a number)");
  }
  if (!v->is_number()) fail(source, ": key '", key, "' must be a number, got ", v->dump());
  return v->get<double>();
}

bool get_bool(const json& obj, const char* key, const std::string& source, bool fallback) {
  const json* v = find_key(obj, key);
  if (!v) return fallback;
  if (!v->is_boolean()) fail(source, ": key '", key, "' must be true or false, got ", v->dump());
  return v->get<bool>();
}

std::string get_string(const json& obj, const char* key, const std::string& source, const std::string& fallback) {
  const json* v = find_key(obj, key);
  if (!v) return fallback;
  if (!v->is_string()) fail(source, ": key '", key, "' must be a string, got ", v->dump());
  return v->get<std::string>();
}

// eos_token_id may be one integer or a list of them.
std::vector<int64_t> get_id_list(const json& obj, const char* key, const std::string& source) {
  const json* v = find_key(obj, key);
  if (!v) return {};
  if (v->is_number_integer()) return {v->get<int64_t>()};
  if (v->is_array()) {
    std::vector<int64_t> ids;
    for (const auto& item : *v) {
      if (!item.is_number_integer()) fail(source, ": key '", key, "' must hold integers, got ", v->dump());
      ids.push_back(item.get<int64_t>());
    }
    return ids;
  }
  fail(source, ": key '", key, "' must be an integer or a list of integers, got ", v->dump());
}

// transformers <5 writes `rope_theta` + `rope_scaling` ({"type"|"rope_type", "factor", ...});
// transformers >=5 writes `rope_parameters` ({"rope_type", "rope_theta", "factor", ...}).
void parse_rope(const json& config, const std::string& source, ModelConfig& out) {
  out.rope_theta = get_double(config, "rope_theta", source, 10000.0);
  const json* scaling = find_key(config, "rope_scaling");
  const char* scaling_key = "rope_scaling";
  if (const json* params = find_key(config, "rope_parameters")) {
    if (!params->is_object()) fail(source, ": key 'rope_parameters' must be an object");
    out.rope_theta = get_double(*params, "rope_theta", source + " rope_parameters", out.rope_theta);
    scaling = params;
    scaling_key = "rope_parameters";
  }
  if (!scaling) return;
  if (!scaling->is_object()) fail(source, ": key '", scaling_key, "' must be an object or null");
  std::string where = source + " " + scaling_key;
  std::string type = get_string(*scaling, "rope_type", where, get_string(*scaling, "type", where, "default"));
  RopeScaling& rope = out.rope_scaling;
  if (type == "default" || type == "none") {
    rope.type = RopeScalingType::none;
    return;
  }
  rope.factor = get_double(*scaling, "factor", where, std::nullopt);
  if (!(rope.factor >= 1.0)) fail(where, ": 'factor' must be >= 1, got ", rope.factor);
  if (type == "linear") {
    rope.type = RopeScalingType::linear;
  } else if (type == "dynamic") {
    rope.type = RopeScalingType::dynamic;
  } else if (type == "llama3") {
    rope.type = RopeScalingType::llama3;
    rope.low_freq_factor = get_double(*scaling, "low_freq_factor", where, std::nullopt);
    rope.high_freq_factor = get_double(*scaling, "high_freq_factor", where, std::nullopt);
    rope.original_max_position_embeddings =
        get_int(*scaling, "original_max_position_embeddings", where, std::nullopt);
  } else {
    fail(where, ": rope type '", type, "' is not supported (supported: default, linear, dynamic, llama3)");
  }
}

}  // namespace

ModelConfig parse_model_config(const json& config, const std::string& source) {
  if (!config.is_object()) fail(source, ": expected a JSON object");
  std::string model_type = get_string(config, "model_type", source, "llama");
  if (model_type != "llama")
    fail(source, ": model_type '", model_type,
         "' is not supported (dsalign trains the LlamaForCausalLM family: deepseek-llm, deepseek-coder)");
  if (const json* archs = find_key(config, "architectures")) {
    if (!archs->is_array()) fail(source, ": key 'architectures' must be a list");
    for (const auto& a : *archs)
      if (!a.is_string() || a.get<std::string>() != "LlamaForCausalLM")
        fail(source, ": architecture ", a.dump(), " is not supported (expected LlamaForCausalLM)");
  }
  ModelConfig c;
  c.hidden_size = get_int(config, "hidden_size", source, std::nullopt);
  c.intermediate_size = get_int(config, "intermediate_size", source, std::nullopt);
  c.num_hidden_layers = get_int(config, "num_hidden_layers", source, std::nullopt);
  c.num_attention_heads = get_int(config, "num_attention_heads", source, std::nullopt);
  c.num_key_value_heads = get_int(config, "num_key_value_heads", source, c.num_attention_heads);
  c.head_dim = get_int(config, "head_dim", source,
                       c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0);
  c.vocab_size = get_int(config, "vocab_size", source, std::nullopt);
  c.max_position_embeddings = get_int(config, "max_position_embeddings", source, 4096);
  c.rms_norm_eps = get_double(config, "rms_norm_eps", source, 1e-6);
  parse_rope(config, source, c);
  c.tie_word_embeddings = get_bool(config, "tie_word_embeddings", source, false);
  c.attention_bias = get_bool(config, "attention_bias", source, false);
  c.mlp_bias = get_bool(config, "mlp_bias", source, false);
  c.initializer_range = get_double(config, "initializer_range", source, 0.02);
  c.torch_dtype = get_string(config, "torch_dtype", source, get_string(config, "dtype", source, "bfloat16"));
  std::string act = get_string(config, "hidden_act", source, "silu");
  if (act != "silu") fail(source, ": hidden_act '", act, "' is not supported (expected silu)");
  c.bos_token_id = get_int(config, "bos_token_id", source, -1);
  c.eos_token_ids = get_id_list(config, "eos_token_id", source);
  c.pad_token_id = get_int(config, "pad_token_id", source, -1);
  validate(c, source);
  return c;
}

void validate(const ModelConfig& c, const std::string& source) {
  auto positive = [&](int64_t v, const char* key) {
    if (v <= 0) fail(source, ": '", key, "' must be positive, got ", v);
  };
  positive(c.hidden_size, "hidden_size");
  positive(c.intermediate_size, "intermediate_size");
  positive(c.num_hidden_layers, "num_hidden_layers");
  positive(c.num_attention_heads, "num_attention_heads");
  positive(c.num_key_value_heads, "num_key_value_heads");
  positive(c.head_dim, "head_dim");
  positive(c.vocab_size, "vocab_size");
  positive(c.max_position_embeddings, "max_position_embeddings");
  if (c.num_attention_heads % c.num_key_value_heads != 0)
    fail(source, ": num_attention_heads (", c.num_attention_heads, ") must be a multiple of num_key_value_heads (",
         c.num_key_value_heads, ")");
  if (c.head_dim % 2 != 0) fail(source, ": head_dim must be even for rotary embeddings, got ", c.head_dim);
  if (!(c.rms_norm_eps > 0)) fail(source, ": 'rms_norm_eps' must be positive, got ", c.rms_norm_eps);
  if (!(c.rope_theta > 0)) fail(source, ": 'rope_theta' must be positive, got ", c.rope_theta);
  if (c.rope_scaling.type == RopeScalingType::llama3) {
    if (c.rope_scaling.original_max_position_embeddings <= 0)
      fail(source, ": rope scaling 'original_max_position_embeddings' must be positive");
    if (!(c.rope_scaling.high_freq_factor > c.rope_scaling.low_freq_factor))
      fail(source, ": rope scaling 'high_freq_factor' must exceed 'low_freq_factor'");
  }
  auto token_in_range = [&](int64_t id, const char* key) {
    if (id >= c.vocab_size) fail(source, ": '", key, "' ", id, " is outside the vocabulary (vocab_size ", c.vocab_size, ")");
  };
  token_in_range(c.bos_token_id, "bos_token_id");
  token_in_range(c.pad_token_id, "pad_token_id");
  for (auto id : c.eos_token_ids) token_in_range(id, "eos_token_id");
}

ModelConfig load_model_config(const std::filesystem::path& path) {
  namespace fs = std::filesystem;
  fs::path config_file = is_existing_directory(path) ? path / "config.json" : path;
  if (!path_exists(config_file)) fail(config_file.string(), ": not found (expected a Hugging Face config.json)");
  json config;
  try {
    config = json::parse(read_text_file(config_file));
  } catch (const json::exception& e) {
    fail(config_file.string(), ": invalid JSON: ", first_line(e));
  }
  ModelConfig c = parse_model_config(config, config_file.string());
  fs::path generation_file = config_file.parent_path() / "generation_config.json";
  if (path_exists(generation_file)) {
    json gen;
    try {
      gen = json::parse(read_text_file(generation_file));
    } catch (const json::exception& e) {
      fail(generation_file.string(), ": invalid JSON: ", first_line(e));
    }
    if (!gen.is_object()) fail(generation_file.string(), ": expected a JSON object");
    c.bos_token_id = get_int(gen, "bos_token_id", generation_file.string(), c.bos_token_id);
    auto eos = get_id_list(gen, "eos_token_id", generation_file.string());
    if (!eos.empty()) c.eos_token_ids = eos;
    c.pad_token_id = get_int(gen, "pad_token_id", generation_file.string(), c.pad_token_id);
    validate(c, generation_file.string());
  }
  return c;
}

const char* rope_scaling_name(RopeScalingType type) {
  switch (type) {
    case RopeScalingType::none: return "none";
    case RopeScalingType::linear: return "linear";
    case RopeScalingType::dynamic: return "dynamic";
    case RopeScalingType::llama3: return "llama3";
  }
  return "?";
}

nlohmann::json to_hf_config_json(const ModelConfig& c, const std::string& torch_dtype) {
  json j = {
      {"architectures", {"LlamaForCausalLM"}},
      {"model_type", "llama"},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"vocab_size", c.vocab_size},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"rope_theta", c.rope_theta},
      {"hidden_act", "silu"},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"attention_bias", c.attention_bias},
      {"attention_dropout", 0.0},
      {"mlp_bias", c.mlp_bias},
      {"initializer_range", c.initializer_range},
      {"pretraining_tp", 1},
      {"use_cache", true},
      {"torch_dtype", torch_dtype},
  };
  const RopeScaling& r = c.rope_scaling;
  switch (r.type) {
    case RopeScalingType::none: j["rope_scaling"] = nullptr; break;
    case RopeScalingType::linear: j["rope_scaling"] = {{"type", "linear"}, {"rope_type", "linear"}, {"factor", r.factor}}; break;
    case RopeScalingType::dynamic: j["rope_scaling"] = {{"type", "dynamic"}, {"rope_type", "dynamic"}, {"factor", r.factor}}; break;
    case RopeScalingType::llama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", r.factor},
                           {"low_freq_factor", r.low_freq_factor},
                           {"high_freq_factor", r.high_freq_factor},
                           {"original_max_position_embeddings", r.original_max_position_embeddings}};
      break;
  }
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  if (c.pad_token_id >= 0) j["pad_token_id"] = c.pad_token_id;
  return j;
}

nlohmann::json to_generation_config_json(const ModelConfig& c) {
  json j = {{"_from_model_config", false}};
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  if (c.pad_token_id >= 0) j["pad_token_id"] = c.pad_token_id;
  return j;
}

namespace {

ModelConfig llm_shape(int64_t d, int64_t ffn, int64_t layers, int64_t heads, int64_t kv_heads) {
  ModelConfig c;
  c.hidden_size = d;
  c.intermediate_size = ffn;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = d / heads;
  c.vocab_size = 102400;
  c.max_position_embeddings = 4096;
  c.rope_theta = 10000.0;
  c.bos_token_id = 100000;
  c.eos_token_ids = {100001};
  return c;
}

ModelConfig coder_shape(int64_t d, int64_t ffn, int64_t layers, int64_t heads, int64_t kv_heads) {
  ModelConfig c = llm_shape(d, ffn, layers, heads, kv_heads);
  c.vocab_size = 32256;
  c.max_position_embeddings = 16384;
  c.rope_theta = 100000.0;
  c.rope_scaling.type = RopeScalingType::linear;
  c.rope_scaling.factor = 4.0;
  c.bos_token_id = 32013;
  c.eos_token_ids = {32014};
  return c;
}

struct Preset {
  const char* name;
  ModelConfig config;
};

std::vector<Preset> presets() {
  ModelConfig tiny = llm_shape(64, 172, 2, 4, 2);
  tiny.vocab_size = 512;
  tiny.bos_token_id = 0;
  tiny.eos_token_ids = {1};
  return {
      {"deepseek-llm-7b", llm_shape(4096, 11008, 30, 32, 32)},
      {"deepseek-llm-67b", llm_shape(8192, 22016, 95, 64, 8)},
      {"deepseek-coder-1.3b", coder_shape(2048, 5504, 24, 16, 16)},
      {"deepseek-coder-6.7b", coder_shape(4096, 11008, 32, 32, 32)},
      {"deepseek-coder-33b", coder_shape(7168, 19200, 62, 56, 8)},
      {"tiny", tiny},                                 // vocab 512, for unit tests
      {"tiny-llm", llm_shape(64, 172, 2, 4, 2)},      // deepseek-llm vocabulary and tokens
      {"tiny-coder", coder_shape(64, 172, 2, 4, 2)},  // deepseek-coder vocabulary, rope x4
  };
}

}  // namespace

std::optional<ModelConfig> model_preset(const std::string& name) {
  for (auto& p : presets())
    if (name == p.name) return p.config;
  return std::nullopt;
}

std::vector<std::string> model_preset_names() {
  std::vector<std::string> names;
  for (auto& p : presets()) names.push_back(p.name);
  return names;
}

}  // namespace dsalign
