// dsalign's log-likelihood scoring against lm-evaluation-harness on the same tiny checkpoint and
// data (tests/oracles/make_eval_cases.py): per-request log-likelihoods within 1e-5 (fp32, CPU),
// the same greedy flags, multiple-choice metrics identical, bits per byte and perplexities equal
// to 1e-6 relative (they are sums of the same log-likelihoods). Generation: generate_until's texts
// with and without a stop string identical to lm-eval's HFLM.generate_until; the GSM8K and MATH
// answer rules identical to lm-eval's regex filters, exact_match and minerva_math utilities on
// crafted responses.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "eval/answer_extraction.h"
#include "eval/gen_tasks.h"
#include "eval/scored_tasks.h"
#include "model/checkpoint.h"

namespace dsalign {
namespace {

namespace fs = std::filesystem;

struct EvalOracle {
  fs::path dir = DSALIGN_EVAL_ORACLE_DIR;
  nlohmann::json expected;
  CausalLM model{nullptr};
  Tokenizer tokenizer;
  ScoringOptions options;
  EvalOracle() : tokenizer(Tokenizer::load(dir / "model")) {
    std::ifstream in(dir / "expected.json");
    expected = nlohmann::json::parse(in);
    model = load_model(dir / "model", DecoderOptions{});
    options.batch_size = 3;
    options.progress = false;
  }
};

void expect_close(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-5 * std::max(1.0, std::abs(want))) << what;
}

TEST(EvalParity, LoglikEqualsLmEval) {
  EvalOracle o;
  std::vector<TokenizedRequest> requests;
  for (const LoglikRequest& r : read_loglik_requests(o.dir / "loglik.jsonl", 0)) requests.push_back(tokenize_request(o.tokenizer, r));
  const auto results = score_requests(o.model, requests, scoring_length(o.model, o.options), o.options.batch_size);
  ASSERT_EQ(results.size(), o.expected["loglik"].size());
  for (size_t i = 0; i < results.size(); ++i) {
    expect_close(results[i].loglik, o.expected["loglik"][i][0].get<double>(), "request " + std::to_string(i));
    EXPECT_EQ(results[i].is_greedy, o.expected["loglik"][i][1].get<bool>()) << "request " << i;
  }
}

TEST(EvalParity, MultipleChoiceEqualsLmEval) {
  EvalOracle o;
  const auto questions = read_mc_questions(o.dir / "mc.jsonl", 0);
  const McReport report = run_multiple_choice(o.model, o.tokenizer, questions, /*unconditional=*/true, o.options);
  for (size_t q = 0; q < questions.size(); ++q)
    for (size_t c = 0; c < questions[q].choices.size(); ++c) {
      expect_close(report.questions[q].lls[c], o.expected["mc_lls"][q][c].get<double>(), "question " + std::to_string(q));
      expect_close(report.questions[q].unconditional_lls[c], o.expected["mc_unconditional_lls"][q][c].get<double>(),
                   "unconditional, question " + std::to_string(q));
    }
  const nlohmann::json& mc = o.expected["mc"];
  EXPECT_DOUBLE_EQ(report.acc.mean, mc["acc"].get<double>());
  EXPECT_DOUBLE_EQ(report.acc_norm.mean, mc["acc_norm"].get<double>());
  EXPECT_DOUBLE_EQ(report.acc_bytes.mean, mc["acc_bytes"].get<double>());
  EXPECT_DOUBLE_EQ(report.acc_mutual_info.mean, mc["acc_mutual_info"].get<double>());
  EXPECT_NEAR(report.acc.stderr_, mc["acc_stderr"].get<double>(), 1e-12);
  EXPECT_NEAR(report.acc_norm.stderr_, mc["acc_norm_stderr"].get<double>(), 1e-12);
}

TEST(EvalParity, BitsPerByteEqualsLmEval) {
  EvalOracle o;
  const auto documents = read_documents(o.dir / "docs.jsonl", 0);
  const BpbReport report = run_bits_per_byte(o.model, o.tokenizer, documents, o.options);
  int64_t windows = 0;
  for (size_t d = 0; d < documents.size(); ++d) {
    expect_close(report.documents[d].loglik, o.expected["bpb_doc_lls"][d].get<double>(), "document " + std::to_string(d));
    windows += report.documents[d].windows;
  }
  EXPECT_GT(windows, static_cast<int64_t>(documents.size())) << "the documents should span several windows";
  const nlohmann::json& bpb = o.expected["bpb"];
  const PerplexityTotals& t = report.totals;
  EXPECT_NEAR(t.bits_per_byte(), bpb["bits_per_byte"].get<double>(), 1e-6 * bpb["bits_per_byte"].get<double>());
  EXPECT_NEAR(t.byte_perplexity(), bpb["byte_perplexity"].get<double>(), 1e-6 * bpb["byte_perplexity"].get<double>());
  EXPECT_NEAR(t.word_perplexity(), bpb["word_perplexity"].get<double>(), 1e-6 * bpb["word_perplexity"].get<double>());
}


TEST(EvalParity, GenerateUntilEqualsLmEval) {
  EvalOracle o;
  const auto& e = o.expected;
  const auto prompts = e["gen_prompts"].get<std::vector<std::string>>();
  const int64_t tokens = e["gen_tokens"].get<int64_t>();
  const int64_t length = o.model->config.max_position_embeddings;  // the second prompt is cut from the left
  const std::vector<GeneratedText> raw = generate_until(o.model, o.tokenizer, prompts, tokens, {}, 2, length, false);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(raw[i].text, e["gen_raw"][i].get<std::string>()) << "prompt " << i;
    EXPECT_FALSE(raw[i].stopped) << "prompt " << i;
    const std::string stop = e["gen_stop"][i].get<std::string>();
    if (stop.empty()) continue;
    const std::vector<GeneratedText> cut = generate_until(o.model, o.tokenizer, {prompts[i]}, tokens, {stop}, 1, length, false);
    EXPECT_EQ(cut[0].text, e["gen_cut"][i].get<std::string>()) << "prompt " << i << " stop '" << stop << "'";
    EXPECT_TRUE(cut[0].stopped) << "prompt " << i;
    EXPECT_LT(cut[0].tokens, tokens) << "prompt " << i << ": the stop string ends generation early";
  }
}

TEST(EvalParity, Gsm8kAnswersEqualLmEvalFilters) {
  EvalOracle o;
  for (const auto& c : o.expected["gsm8k"]) {
    const std::string response = c["response"], gold = c["gold"];
    const std::string strict = gsm8k_strict_answer(response), flexible = gsm8k_flexible_answer(response);
    EXPECT_EQ(strict, c["strict"].get<std::string>()) << response;
    EXPECT_EQ(flexible, c["flexible"].get<std::string>()) << response;
    EXPECT_EQ(gsm8k_normalise(strict) == gsm8k_normalise(gold), c["em_strict"].get<double>() == 1.0) << response;
    EXPECT_EQ(gsm8k_normalise(flexible) == gsm8k_normalise(gold), c["em_flexible"].get<double>() == 1.0) << response;
  }
}

TEST(EvalParity, MathAnswersEqualMinervaUtilities) {
  EvalOracle o;
  for (const auto& c : o.expected["math"]) {
    const std::string response = c["response"];
    const std::string final = minerva_final_answer(response);
    EXPECT_EQ(final, c["final"].get<std::string>()) << response;
    EXPECT_EQ(normalise_math_answer(final), c["final_normalised"].get<std::string>()) << response;
    const std::optional<std::string> boxed = last_boxed_content(response);
    if (c["boxed"].is_null()) EXPECT_FALSE(boxed.has_value()) << response;
    else EXPECT_EQ(boxed.value_or("<none>"), c["boxed"].get<std::string>()) << response;
  }
  for (const auto& c : o.expected["math_norm"])
    EXPECT_EQ(normalise_math_answer(c[0].get<std::string>()), c[1].get<std::string>()) << c[0].get<std::string>();
}

}  // namespace
}  // namespace dsalign
