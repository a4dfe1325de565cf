// dsalign's log-likelihood scoring against lm-evaluation-harness on the same tiny checkpoint and
// data (tests/oracles/make_eval_cases.py): per-request log-likelihoods within 1e-5 (fp32, CPU),
// the same greedy flags, multiple-choice metrics identical, bits per byte and perplexities equal
// to 1e-6 relative (they are sums of the same log-likelihoods).
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

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

}  // namespace
}  // namespace dsalign
