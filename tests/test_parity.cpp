// Parity with Hugging Face transformers: checkpoints and logits made by
// tests/oracles/make_model_cases.py (run by CTest as the fixture of these tests).
#include <gtest/gtest.h>

#include <cstdlib>

#include "data/chat_template.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/generate.h"
#include "model/weight_file.h"
#include "util/files.h"

using namespace dsalign;

namespace {

fs::path case_dir(const std::string& name) { return fs::path(DSALIGN_ORACLE_DIR) / name; }

std::map<std::string, torch::Tensor> expected(const std::string& name) {
  std::map<std::string, torch::Tensor> out;
  for (auto& [k, v] : read_safetensors(case_dir(name) / "expected.safetensors")) out[k] = v;
  return out;
}

double max_abs(const torch::Tensor& t) { return t.abs().max().item<double>(); }

struct Forward {
  torch::Tensor logits;  // fp32
  double loss;
};

Forward run(CausalLM& model, const torch::Tensor& ids) {
  torch::NoGradGuard no_grad;
  torch::Tensor logits = model->forward({ids}).to(torch::kFloat32);
  auto [sum, count] = model->loss_sum({ids}, ids);
  return {logits, sum.item<double>() / count.item<double>()};
}

DecoderOptions fp32() { return {}; }

void expect_fp32_parity(const std::string& name) {
  auto e = expected(name);
  CausalLM model = load_model(case_dir(name) / "model", fp32());
  Forward f = run(model, e["ids"]);
  double scale = max_abs(e["logits"]);
  EXPECT_LE(max_abs(f.logits - e["logits"]), 1e-4 * scale) << name;
  EXPECT_NEAR(f.loss, e["loss"].item<double>(), 1e-5) << name;

  // Right padding: logits at real positions equal transformers' with attention_mask.
  torch::Tensor mask = e["pad_mask"];
  torch::NoGradGuard no_grad;
  torch::Tensor padded = model->forward({e["pad_ids"], {}, document_ids_from_attention_mask(mask)});
  torch::Tensor real = mask.to(torch::kBool).unsqueeze(-1);
  torch::Tensor diff = (padded - e["pad_logits"]).masked_fill(real.logical_not(), 0);
  EXPECT_LE(max_abs(diff), 1e-4 * scale) << name << " (padded)";

  // Packed row: documents one after another, positions restarting; transformers ran each alone.
  torch::Tensor positions = e["packed_positions"];
  torch::Tensor packed = model->forward({e["packed_ids"], positions, document_ids_from_positions(positions)});
  EXPECT_LE(max_abs(packed - e["packed_logits"]), 1e-4 * scale) << name << " (packed)";
}

}  // namespace

TEST(Parity, MhaFromTorchBinShards) {
  expect_fp32_parity("mha_bin");
  // generation_config.json's special tokens win over config.json's.
  ModelConfig c = load_model_config(case_dir("mha_bin") / "model");
  EXPECT_EQ(c.bos_token_id, 900);
  ASSERT_EQ(c.eos_token_ids.size(), 1u);
  EXPECT_EQ(c.eos_token_ids[0], 901);
}

TEST(Parity, Gqa8To1FromShardedSafetensors) { expect_fp32_parity("gqa_safetensors"); }
TEST(Parity, TiedEmbeddings) { expect_fp32_parity("tied"); }
TEST(Parity, RopeLlama3) { expect_fp32_parity("rope_llama3"); }
TEST(Parity, RopeDynamicPastMaxPositions) { expect_fp32_parity("rope_dynamic"); }

// deepseek-coder-33b style in bf16. Rule (as Liger-Kernel's): our bf16 error against the fp32
// reference may be at most twice transformers' own bf16 error, plus 1e-3 of the logit scale.
TEST(Parity, CoderLinearRopeBf16) {
  auto e = expected("coder_linear_bf16");
  ModelConfig c = load_model_config(case_dir("coder_linear_bf16") / "model");
  EXPECT_EQ(c.rope_scaling.type, RopeScalingType::linear);
  EXPECT_EQ(c.rope_scaling.factor, 4.0);
  EXPECT_EQ(c.rope_theta, 100000.0);
  EXPECT_EQ(c.max_position_embeddings, 16384);

  DecoderOptions bf16;
  bf16.param_dtype = bf16.compute_dtype = torch::kBFloat16;
  CausalLM model = load_model(case_dir("coder_linear_bf16") / "model", bf16);
  Forward f = run(model, e["ids"]);
  const torch::Tensor& ref = e["ref_logits"];
  double scale = max_abs(ref);
  double hf_error = max_abs(e["logits"] - ref);
  double our_error = max_abs(f.logits - ref);
  EXPECT_LE(our_error, 2 * hf_error + 1e-3 * scale) << "ours " << our_error << " transformers " << hf_error;
  EXPECT_NEAR(f.loss, e["loss"].item<double>(), 2e-2);

  // The same bf16 weights loaded into fp32 match transformers' fp32 run.
  CausalLM model32 = load_model(case_dir("coder_linear_bf16") / "model", fp32());
  Forward f32 = run(model32, e["ids"]);
  EXPECT_LE(max_abs(f32.logits - ref), 1e-4 * scale);
}

// Our writer's output (sharded safetensors + index + config.json) loads in transformers with the
// same logits.
TEST(Parity, WrittenCheckpointLoadsInTransformers) {
  auto e = expected("gqa_safetensors");
  CausalLM model = load_model(case_dir("gqa_safetensors") / "model", fp32());
  fs::path out = fs::temp_directory_path() / ("dsalign_parity_export_" + std::to_string(::getpid()));
  fs::remove_all(out);
  SaveOptions save;
  save.dtype = torch::kFloat32;
  save.max_shard_bytes = 300 * 1000;  // several shards
  save_checkpoint(model, out / "ckpt", save);
  EXPECT_TRUE(fs::exists(out / "ckpt" / "model.safetensors.index.json"));
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = model->forward({e["ids"]});
  }
  write_safetensors(out / "logits.safetensors", {{"input_ids", e["ids"]}, {"logits", logits}});
  std::string command = std::string(DSALIGN_PYTHON) + " " + DSALIGN_ORACLES_SRC + "/check_hf_load.py " +
                        (out / "ckpt").string() + " " + (out / "logits.safetensors").string();
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  // And reloads in dsalign bit for bit.
  CausalLM again = load_model(out / "ckpt", fp32());
  for (auto& [name, t] : checkpoint_tensors(model)) {
    bool same = false;
    for (auto& [name2, t2] : checkpoint_tensors(again))
      if (name2 == name) same = torch::equal(t, t2);
    EXPECT_TRUE(same) << name;
  }
  fs::remove_all(out);
}

// `dsalign export`'s chat checkpoint, as a user loads it: transformers' logits equal dsalign's,
// apply_chat_template gives dsalign's prompt ids, and greedy generate gives dsalign's KV-cache
// response, stopping at the end-of-turn token generation_config.json names.
TEST(Parity, ExportedChatCheckpointLoadsAndGeneratesInTransformers) {
  fs::path out = fs::temp_directory_path() / ("dsalign_parity_chat_" + std::to_string(::getpid()));
  fs::remove_all(out);
  ModelConfig config = *model_preset("tiny-coder");
  config.initializer_range = 0.2;  // clear argmax margins: greedy paths must not hinge on rounding
  SaveOptions save;
  save.dtype = torch::kFloat32;
  init_checkpoint(config, 7, out / "model", save);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-coder" / f, out / "model" / f);
  ExportOptions options;  // bf16
  export_model(out / "model", out / "chat", "deepseek-coder", options);
  for (const char* f : {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"})
    EXPECT_TRUE(fs::exists(out / "chat" / f)) << f;

  CausalLM model = load_model(out / "chat", fp32());
  Tokenizer tokenizer = Tokenizer::load(out / "chat");
  ASSERT_EQ(resolve_chat_format("auto", tokenizer), ChatFormat::deepseek_coder);
  torch::Tensor ids = torch::randint(32000, {2, 12}, torch::kInt64);
  torch::Tensor logits;
  {
    torch::NoGradGuard no_grad;
    logits = model->forward({ids});
  }
  write_safetensors(out / "cases.safetensors", {{"input_ids", ids}, {"logits", logits}});

  const std::string prompt = "Write a function that adds two numbers.";
  EncodeScratch scratch;
  std::vector<int32_t> prompt_ids = tokenize_chat(tokenizer, ChatFormat::deepseek_coder, {{"user", prompt}}, true, ChatLossOptions{}, scratch).ids;
  GenerationOptions g;
  g.max_new_tokens = 24;
  g.stop_ids = {*tokenizer.token_to_id("<|EOT|>")};
  Generation response = generate_greedy(model, {prompt_ids}, g)[0];
  std::vector<int32_t> response_ids = response.tokens;
  if (response.terminated) response_ids.push_back(g.stop_ids[0]);
  nlohmann::json chat = {{"prompt", prompt}, {"prompt_ids", prompt_ids}, {"response_ids", response_ids},
                         {"max_new_tokens", g.max_new_tokens}};
  write_file_atomic(out / "chat.json", chat.dump());
  std::string command = std::string(DSALIGN_PYTHON) + " " + DSALIGN_ORACLES_SRC + "/check_chat_export.py " +
                        (out / "chat").string() + " " + (out / "cases.safetensors").string() + " " + (out / "chat.json").string();
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  fs::remove_all(out);
}
