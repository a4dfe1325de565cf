// ModelConfig parsing and validation, presets, and the inspect arithmetic.
#include <gtest/gtest.h>

#include "model/config.h"
#include "model/inspect.h"
#include "util/error.h"

using namespace dsalign;
using nlohmann::json;

namespace {

json deepseek_llm_7b_config() {
  // deepseek-llm-7b-base's config.json as published (bos/eos 1/2 are what it says).
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
    "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
    "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 30, "num_key_value_heads": 32,
    "pretraining_tp": 1, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 10000,
    "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.33.1",
    "use_cache": true, "vocab_size": 102400})");
}

std::string error_of(const json& j) {
  try {
    parse_model_config(j, "config.json");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ModelConfig, ParsesDeepSeekLlm7b) {
  ModelConfig c = parse_model_config(deepseek_llm_7b_config(), "config.json");
  EXPECT_EQ(c.hidden_size, 4096);
  EXPECT_EQ(c.num_key_value_heads, 32);
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::none);
  EXPECT_EQ(c.vocab_size, 102400);
}

TEST(ModelConfig, ParsesCoderRopeScalingBothSpellings) {
  json v4 = deepseek_llm_7b_config();
  v4["rope_scaling"] = {{"type", "linear"}, {"factor", 4.0}};
  v4["rope_theta"] = 100000;
  ModelConfig a = parse_model_config(v4, "config.json");
  EXPECT_EQ(a.rope_scaling.type, RopeScalingType::linear);
  EXPECT_EQ(a.rope_scaling.factor, 4.0);
  EXPECT_EQ(a.rope_theta, 100000.0);

  json v5 = deepseek_llm_7b_config();
  v5.erase("rope_scaling");
  v5.erase("rope_theta");
  v5["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 4.0}, {"rope_theta", 100000.0}};
  ModelConfig b = parse_model_config(v5, "config.json");
  EXPECT_EQ(b.rope_scaling.type, RopeScalingType::linear);
  EXPECT_EQ(b.rope_theta, 100000.0);
}

TEST(ModelConfig, ErrorsNameTheKey) {
  json j = deepseek_llm_7b_config();
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("missing key 'hidden_size'"), std::string::npos) << error_of(j);

  j = deepseek_llm_7b_config();
  j["num_key_value_heads"] = 5;
  EXPECT_NE(error_of(j).find("num_key_value_heads"), std::string::npos);

  j = deepseek_llm_7b_config();
  j["hidden_size"] = "4096";
  EXPECT_NE(error_of(j).find("'hidden_size' must be an integer"), std::string::npos);

  j = deepseek_llm_7b_config();
  j["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}};
  EXPECT_NE(error_of(j).find("rope type 'yarn' is not supported"), std::string::npos);

  j = deepseek_llm_7b_config();
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("hidden_act"), std::string::npos);

  j = deepseek_llm_7b_config();
  j["model_type"] = "deepseek_v2";
  EXPECT_NE(error_of(j).find("model_type 'deepseek_v2'"), std::string::npos);

  j = deepseek_llm_7b_config();
  j["eos_token_id"] = 200000;
  EXPECT_NE(error_of(j).find("eos_token_id"), std::string::npos);
}

// A fuzzing finding (fuzz/corpus/model_config/regression-huge-float-integer): an integer key
// holding 7.5e61 was cast to int64 (undefined behaviour); now it is an error naming the key.
TEST(ModelConfig, HugeIntegersAreErrors) {
  json j = deepseek_llm_7b_config();
  j["hidden_size"] = 7.5e61;
  EXPECT_NE(error_of(j).find("key 'hidden_size' must be an integer"), std::string::npos) << error_of(j);
  j["hidden_size"] = uint64_t{18000000000000000000u};
  EXPECT_NE(error_of(j).find("too large for an integer"), std::string::npos) << error_of(j);
  j["hidden_size"] = 4096.0;
  EXPECT_EQ(error_of(j), "");
}

TEST(ModelConfig, HfJsonRoundTrip) {
  for (const auto& name : model_preset_names()) {
    ModelConfig c = *model_preset(name);
    ModelConfig back = parse_model_config(to_hf_config_json(c, "bfloat16"), name);
    EXPECT_EQ(back.hidden_size, c.hidden_size) << name;
    EXPECT_EQ(back.num_key_value_heads, c.num_key_value_heads) << name;
    EXPECT_EQ(back.rope_scaling.type, c.rope_scaling.type) << name;
    EXPECT_EQ(back.rope_scaling.factor, c.rope_scaling.factor) << name;
    EXPECT_EQ(back.eos_token_ids, c.eos_token_ids) << name;
  }
}

// Published sizes: deepseek-llm-7b has 6.91B parameters, deepseek-coder-1.3b 1.35B,
// deepseek-llm-67b 67.4B, deepseek-coder-33b 33.3B.
TEST(Inspect, ParameterCountsMatchPublishedModels) {
  EXPECT_EQ(count_parameters(*model_preset("deepseek-llm-7b")).total, 6910365696);
  EXPECT_NEAR(count_parameters(*model_preset("deepseek-coder-1.3b")).total / 1e9, 1.346, 0.001);
  EXPECT_NEAR(count_parameters(*model_preset("deepseek-llm-67b")).total / 1e9, 67.4, 0.1);
  EXPECT_NEAR(count_parameters(*model_preset("deepseek-coder-33b")).total / 1e9, 33.3, 0.1);
}

TEST(Inspect, FlopsFormulas) {
  ModelConfig c = *model_preset("deepseek-llm-7b");
  // Paper Eq. 2: M = 72 n d^2 + 12 n d l
  EXPECT_DOUBLE_EQ(paper_flops_per_token(c, 4096), 72.0 * 30 * 4096.0 * 4096 + 12.0 * 30 * 4096 * 4096);
  ParameterCounts p = count_parameters(c);
  EXPECT_DOUBLE_EQ(training_flops_per_token(c, 4096), 6.0 * p.non_embedding + 6.0 * 30 * 4096 * 4096);
  EXPECT_EQ(p.non_embedding, p.total - 102400 * 4096);
  // fp32 master weights: 16 bytes per parameter with AdamW.
  EXPECT_DOUBLE_EQ(training_memory(c, 4).total(), 16.0 * p.total);
}
