// DPO parity with TRL: tests/oracles/make_dpo_cases.py (run by CTest as this suite's fixture)
// records what TRL 1.16 computes at step 0 on a tiny checkpoint and a few chat pairs, for each of
// DeepSeek's chat formats with its own tokenizer; dsalign's trainer path (pair_rows ->
// collate_pairs -> score_pairs -> dpo_terms -> micro_batch_loss) must reproduce the token ids,
// per-pair log-probs, loss, logged metrics and one weight's gradient.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "dpo/dpo_step.h"
#include "model/checkpoint.h"
#include "model/weight_file.h"
#include "train/device_sums.h"
#include "util/files.h"
#include "test_util.h"

using namespace dsalign;

namespace {

const std::vector<std::string> kFormats = {"deepseek-llm", "deepseek-coder"};

// The oracle's files for one chat format.
fs::path oracle(const std::string& format) { return fs::path(DSALIGN_DPO_ORACLE_DIR) / format; }

nlohmann::json expected(const std::string& format) {
  return nlohmann::json::parse(read_text_file(oracle(format) / "expected.json"));
}

// The chat format comes from the tokenizer's own template (auto), as a user's run would get it.
std::vector<TokenizedPair> oracle_pairs(const std::string& format, const Tokenizer& tokenizer) {
  DataConfig config;
  config.max_seq_len = 4096;
  PairReport report;
  ChatFormat chat = resolve_chat_format("auto", tokenizer);
  EXPECT_STREQ(chat_format_name(chat), format.c_str());
  return read_preference_pairs(oracle(format) / "pairs.jsonl", config, tokenizer, chat, report);
}

int32_t pad_id(const Tokenizer& tokenizer) { return tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0)); }

CausalLM frozen(const fs::path& dir) {
  CausalLM m = load_model(dir, DecoderOptions{});
  for (auto& p : m->parameters()) p.set_requires_grad(false);
  return m;
}

DpoLossConfig loss_config(const std::string& name, const nlohmann::json& params) {
  DpoLossConfig c;
  c.type = name == "cdpo" ? DpoLossType::sigmoid
           : name == "robust" ? DpoLossType::robust
           : name == "ipo"    ? DpoLossType::ipo
           : name == "hinge"  ? DpoLossType::hinge
           : name == "rpo"    ? DpoLossType::rpo
           : name == "simpo"  ? DpoLossType::simpo
                              : DpoLossType::sigmoid;
  c.beta = params.at("beta");
  c.label_smoothing = params.value("label_smoothing", 0.0);
  c.rpo_alpha = params.value("rpo_alpha", 1.0);
  c.simpo_gamma = params.value("simpo_gamma", 0.5);
  return c;
}

// |a - b| <= tol * max(1, |b|)
void expect_close(double actual, double want, double tol, const std::string& what) {
  EXPECT_LE(std::abs(actual - want), tol * std::max(1.0, std::abs(want))) << what << ": " << actual << " vs TRL " << want;
}

struct StepResult {
  double loss = 0;
  DpoMetricSums sums;
  torch::Tensor chosen, rejected;  // policy log-probs per pair (as the loss saw them)
  torch::Tensor grad;
};

// One step over all pairs, in micro-batches of `rows_per_batch` rows, as the trainer runs it.
StepResult step(CausalLM& policy, const std::vector<TokenizedPair>& pairs, const ReferenceSource& reference,
                const DpoLossConfig& loss, bool packing, int64_t rows_per_batch, int32_t pad, const std::string& grad_param) {
  std::vector<const TokenizedPair*> list;
  std::vector<size_t> ids;
  for (size_t i = 0; i < pairs.size(); ++i) list.push_back(&pairs[i]), ids.push_back(i);
  std::vector<PackedRow> rows = pair_rows(list, 4096, packing, pad);
  const double chosen_tokens = chosen_loss_tokens(list);
  policy->zero_grad();
  StepResult out;
  std::vector<torch::Tensor> chosen, rejected;
  DeviceSums figures;
  int64_t scored = 0;
  for (size_t b = 0; b < rows.size(); b += static_cast<size_t>(rows_per_batch)) {
    PairBatch batch = collate_pairs(rows, b, std::min(rows.size(), b + static_cast<size_t>(rows_per_batch)), ids, torch::kCPU, pad);
    PairLogps logps = score_pairs(policy, batch, loss.needs_reference() ? reference : ReferenceSource{});
    DpoTerms terms = dpo_terms(loss, logps);
    torch::Tensor l = micro_batch_loss(loss, terms, logps, static_cast<int64_t>(pairs.size()), chosen_tokens);
    l.backward();
    out.loss += l.item<double>();
    figures.add(dpo_metric_figures(terms, l));
    scored += terms.losses.size(0);
    chosen.push_back(logps.policy_chosen.detach());
    rejected.push_back(logps.policy_rejected.detach());
  }
  out.sums = DpoMetricSums::from_figures(figures.read(7), scored);
  out.chosen = torch::cat(chosen);
  out.rejected = torch::cat(rejected);
  for (auto& item : policy->named_parameters())
    if (item.key() == grad_param) out.grad = item.value().grad().clone();
  return out;
}

}  // namespace

class DpoParity : public ::testing::TestWithParam<std::string> {};

// For deepseek-coder, TRL's completion ends with <|EOT|> and the newline the template renders after it.
TEST_P(DpoParity, TokenIdsMatchTrl) {
  const std::string format = GetParam();
  Tokenizer tokenizer = Tokenizer::load(oracle(format) / "policy");
  auto pairs = oracle_pairs(format, tokenizer);
  const auto want = expected(format).at("pairs");
  ASSERT_EQ(pairs.size(), want.size());
  for (size_t i = 0; i < pairs.size(); ++i) {
    std::vector<int32_t> prompt = want[i].at("prompt_ids");
    for (const char* side : {"chosen", "rejected"}) {
      const TokenizedExample& e = std::string(side) == "chosen" ? pairs[i].chosen : pairs[i].rejected;
      std::vector<int32_t> ids = prompt, completion = want[i].at(std::string(side) + "_ids");
      ids.insert(ids.end(), completion.begin(), completion.end());
      EXPECT_EQ(e.ids, ids) << format << " pair " << i << " " << side;
      std::vector<uint8_t> mask(prompt.size(), 0);
      mask.resize(ids.size(), 1);
      EXPECT_EQ(e.loss_mask, mask) << format << " pair " << i << " " << side << ": the loss must cover exactly TRL's completion";
    }
  }
}

class DpoLossParity : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(DpoLossParity, MatchesTrlAtStepZero) {
  const auto [format, name] = GetParam();
  const nlohmann::json all = expected(format);
  const auto& want = all.at("cases").at(name);
  const std::string grad_param = all.at("grad_param");
  const DpoLossConfig loss = loss_config(name, want.at("params"));
  Tokenizer tokenizer = Tokenizer::load(oracle(format) / "policy");
  const int32_t pad = pad_id(tokenizer);
  auto pairs = oracle_pairs(format, tokenizer);
  CausalLM policy = load_model(oracle(format) / "policy", DecoderOptions{});
  CausalLM reference = frozen(oracle(format) / "reference");
  ReferenceSource live{&reference, nullptr};

  StepResult s = step(policy, pairs, live, loss, /*packing=*/true, /*rows_per_batch=*/4, pad, grad_param);
  expect_close(s.loss, want.at("loss"), 1e-5, name + " loss");
  nlohmann::json metrics = s.sums.to_json();
  for (const char* key : {"rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin", "logps/chosen", "logps/rejected"})
    expect_close(metrics.at(key), want.at(key), 1e-5, name + " " + key);
  if (name != "simpo") {
    for (size_t i = 0; i < pairs.size(); ++i) {
      expect_close(s.chosen[i].item<double>(), want.at("policy_chosen_logps")[i], 1e-5, "policy chosen logp " + std::to_string(i));
      expect_close(s.rejected[i].item<double>(), want.at("policy_rejected_logps")[i], 1e-5, "policy rejected logp " + std::to_string(i));
    }
  }
  // The gradient of one weight matrix, against TRL's after loss.backward().
  torch::Tensor trl_grad;
  for (auto& [key, t] : read_safetensors(oracle(format) / "grads.safetensors"))
    if (key == name) trl_grad = t;
  ASSERT_TRUE(trl_grad.defined() && s.grad.defined());
  const double scale = trl_grad.abs().max().item<double>();
  ASSERT_GT(scale, 0);
  EXPECT_LE((s.grad - trl_grad).abs().max().item<double>(), 1e-5 * scale) << name << " gradient of " << grad_param;

  // Micro-batches of one unpacked pair accumulate to the same step.
  StepResult split = step(policy, pairs, live, loss, /*packing=*/false, /*rows_per_batch=*/1, pad, grad_param);
  expect_close(split.loss, s.loss, 1e-6, name + " loss, one pair per micro-batch");
  EXPECT_LE((split.grad - s.grad).abs().max().item<double>(), 1e-5 * scale) << name << " gradient, one pair per micro-batch";
}

std::string test_name(const std::string& s) {
  std::string out;
  for (char c : s) out += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return out;
}

INSTANTIATE_TEST_SUITE_P(Trl, DpoLossParity,
                         ::testing::Combine(::testing::ValuesIn(kFormats),
                                            ::testing::Values("sigmoid", "cdpo", "robust", "ipo", "hinge", "rpo", "simpo")),
                         [](const auto& info) {
                           return test_name(std::get<0>(info.param)) + "_" + std::get<1>(info.param);
                         });

TEST_P(DpoParity, PrecomputedReferenceEqualsLive) {
  const std::string format = GetParam();
  const nlohmann::json all = expected(format);
  Tokenizer tokenizer = Tokenizer::load(oracle(format) / "policy");
  const int32_t pad = pad_id(tokenizer);
  auto pairs = oracle_pairs(format, tokenizer);
  CausalLM reference = frozen(oracle(format) / "reference");
  ReferenceTable table = compute_reference_table(reference, pairs, 4096, true, 2, pad, "reference");
  const auto& want = all.at("cases").at("sigmoid");
  for (size_t i = 0; i < pairs.size(); ++i) {
    expect_close(table.chosen[i], want.at("reference_chosen_logps")[i], 1e-5, "reference chosen " + std::to_string(i));
    expect_close(table.rejected[i], want.at("reference_rejected_logps")[i], 1e-5, "reference rejected " + std::to_string(i));
  }
  CausalLM policy = load_model(oracle(format) / "policy", DecoderOptions{});
  DpoLossConfig loss;
  StepResult live = step(policy, pairs, {&reference, nullptr}, loss, true, 4, pad, all.at("grad_param"));
  StepResult cached = step(policy, pairs, {nullptr, &table}, loss, true, 4, pad, all.at("grad_param"));
  expect_close(cached.loss, live.loss, 1e-6, "loss with the precomputed reference");

  // The cache file round-trips, and a different pair count is not a hit.
  dsalign::testing::TempDir tmp;
  write_reference_cache(tmp.path / "k.safetensors", table, ReferenceTable{});
  auto back = read_reference_cache(tmp.path / "k.safetensors", pairs.size(), 0);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->first.chosen, table.chosen);
  EXPECT_FALSE(read_reference_cache(tmp.path / "k.safetensors", pairs.size() + 1, 0).has_value());
}

INSTANTIATE_TEST_SUITE_P(Trl, DpoParity, ::testing::ValuesIn(kFormats), [](const auto& info) { return test_name(info.param); });
