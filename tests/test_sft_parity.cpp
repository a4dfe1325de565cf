// SFT parity with TRL: tests/oracles/make_sft_cases.py (run by CTest as this suite's fixture)
// records what TRL 1.16's SFTTrainer computes at step 0 on a tiny checkpoint, for each of
// DeepSeek's chat formats: prompt/response records under its completion-only loss, multi-turn
// messages under its assistant-only loss. dsalign's trainer path (prepare_sft_data ->
// pack_examples -> collate -> loss_sum, sum-then-divide) must give the same token ids, the same
// per-token loss mask, the same loss and the same gradient of one weight (fp32, CPU, 1e-5).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "data/sft_data.h"
#include "model/checkpoint.h"
#include "model/weight_file.h"
#include "train/run_setup.h"
#include "util/files.h"
#include "test_util.h"

using namespace dsalign;

namespace {

fs::path oracle(const std::string& format) { return fs::path(DSALIGN_SFT_ORACLE_DIR) / format; }

struct Loaded {
  Tokenizer tokenizer;
  std::vector<TokenizedExample> examples;  // in file order
};

// The records through the trainer's data path: the chat format from the tokenizer's template.
Loaded load_examples(const std::string& format, const std::string& name, const fs::path& cache) {
  Loaded out{Tokenizer::load(oracle(format) / "model"), {}};
  DataConfig config;
  config.sources = {{(oracle(format) / (name + ".jsonl")).string(), 1.0}};
  config.cache_dir = cache.string();
  ChatFormat chat = resolve_chat_format("auto", out.tokenizer);
  EXPECT_STREQ(chat_format_name(chat), format.c_str());
  SftData data = prepare_sft_data(config, out.tokenizer, chat, oracle(format));
  out.examples = data.train;
  std::sort(out.examples.begin(), out.examples.end(), [](const auto& a, const auto& b) { return a.line < b.line; });
  return out;
}

// One optimizer step's loss over `rows`, micro-batches of `rows_per_batch`, as the SFT trainer
// computes it (every micro-batch's sum over the step's loss tokens); leaves the gradient in `model`.
double step_loss(CausalLM& model, const std::vector<PackedRow>& rows, size_t rows_per_batch, int32_t pad) {
  model->zero_grad();
  std::vector<Batch> micro;
  int64_t loss_tokens = 0;
  for (size_t b = 0; b < rows.size(); b += rows_per_batch) {
    micro.push_back(collate(rows, b, std::min(rows.size(), b + rows_per_batch), torch::kCPU, pad));
    loss_tokens += micro.back().loss_tokens;
  }
  double loss = 0;
  for (Batch& batch : micro) {
    auto [sum, count] = model->loss_sum(batch.input, batch.labels);
    torch::Tensor l = sum / static_cast<double>(loss_tokens);
    l.backward();
    loss += l.item<double>();
  }
  return loss;
}

torch::Tensor grad_of(CausalLM& model, const std::string& name) {
  for (auto& item : model->named_parameters())
    if (item.key() == name) return item.value().grad().clone();
  return {};
}

class SftParity : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(SftParity, MatchesTrlAtStepZero) {
  const auto [format, name] = GetParam();
  const nlohmann::json all = nlohmann::json::parse(read_text_file(oracle(format) / "expected.json"));
  const nlohmann::json& want = all.at("cases").at(name);
  dsalign::testing::TempDir cache;
  Loaded data = load_examples(format, name, cache.path);

  // Token ids and the loss mask, record by record (the first token never carries loss in either).
  const auto& records = want.at("records");
  ASSERT_EQ(data.examples.size(), records.size());
  for (size_t i = 0; i < records.size(); ++i) {
    EXPECT_EQ(data.examples[i].ids, records[i].at("ids").get<std::vector<int32_t>>()) << format << " " << name << " record " << i;
    EXPECT_EQ(data.examples[i].loss_mask, records[i].at("loss_mask").get<std::vector<uint8_t>>())
        << format << " " << name << " record " << i << ": the loss must cover exactly TRL's tokens";
  }

  // Loss and gradient: all records packed in one row, and one record per micro-batch.
  const int32_t pad = data.tokenizer.pad_id().value_or(data.tokenizer.eos_id().value_or(0));
  std::vector<const TokenizedExample*> list;
  for (const auto& e : data.examples) list.push_back(&e);
  CausalLM model = load_model(oracle(format) / "model", DecoderOptions{});
  const double packed = step_loss(model, pack_examples(list, 4096, false, pad), 1, pad);
  const double want_loss = want.at("loss");
  EXPECT_LE(std::abs(packed - want_loss), 1e-5 * std::max(1.0, std::abs(want_loss))) << packed << " vs TRL " << want_loss;
  torch::Tensor grad = grad_of(model, all.at("grad_param"));

  torch::Tensor trl_grad;
  for (auto& [key, t] : read_safetensors(oracle(format) / "grads.safetensors"))
    if (key == name) trl_grad = t;
  ASSERT_TRUE(trl_grad.defined() && grad.defined());
  const double scale = trl_grad.abs().max().item<double>();
  ASSERT_GT(scale, 0);
  EXPECT_LE((grad - trl_grad).abs().max().item<double>(), 1e-5 * scale) << "gradient of " << all.at("grad_param");

  std::vector<PackedRow> single;
  for (const auto* e : list) single.push_back(pack_examples({e}, 4096, false, pad).at(0));
  const double split = step_loss(model, single, 1, pad);
  EXPECT_LE(std::abs(split - want_loss), 1e-5 * std::max(1.0, std::abs(want_loss))) << "one record per micro-batch";
  EXPECT_LE((grad_of(model, all.at("grad_param")) - trl_grad).abs().max().item<double>(), 1e-5 * scale)
      << "gradient, one record per micro-batch";
}

INSTANTIATE_TEST_SUITE_P(Trl, SftParity,
                         ::testing::Combine(::testing::Values("deepseek-llm", "deepseek-coder"),
                                            ::testing::Values("completion", "messages")),
                         [](const auto& info) {
                           std::string f = std::get<0>(info.param);
                           std::replace(f.begin(), f.end(), '-', '_');
                           return f + "_" + std::get<1>(info.param);
                         });

}  // namespace
