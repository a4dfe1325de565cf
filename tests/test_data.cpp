// JSONL records, the data config section, SFT data preparation (token cache, length policy,
// domains, validation split, weights) and packing.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include "data/preference_data.h"
#include "data/sft_data.h"
#include "data/varlen.h"
#include "util/error.h"
#include "util/files.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::TempDir;
using dsalign::testing::error_of;

namespace {

fs::path assets() { return fs::path(DSALIGN_SOURCE_DIR) / "assets" / "tokenizers"; }

DataConfig config_from(const std::string& yaml) {
  YamlReader reader(YAML::Load(yaml)["data"], "data", "recipe.yaml");
  return parse_data_config(reader);
}

const char* kGoodSft =
    R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], "domain": "general"})"
    "\n"
    R"({"prompt": "What is 2+2?", "response": "4", "domain": "math"})"
    "\n\n"
    R"J({"prompt": "Write a loop", "response": "for i in range(3): print(i)", "domain": "code"})J"
    "\n";

}  // namespace

TEST(Records, ReadsBothSftShapes) {
  TempDir tmp;
  ReadReport report;
  auto records = read_sft_jsonl(tmp.write("a.jsonl", kGoodSft), OnError::fail, report);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].messages.size(), 3u);
  EXPECT_EQ(records[1].messages[0].role, "user");
  EXPECT_EQ(records[1].messages[1].role, "assistant");
  EXPECT_EQ(records[1].domain, "math");
  EXPECT_EQ(records[2].line, 4u);  // blank line 3 is skipped but counted
}

TEST(Records, BadRecordsNameFileAndLine) {
  TempDir tmp;
  struct Case {
    std::string line, expected;
  };
  std::vector<Case> cases = {
      {"{\"messages\": [", "malformed JSON"},
      {"{\"txt\": \"hi\"}", "expected 'messages', 'prompt' and 'response', or 'text'"},
      {"{\"text\": \"\"}", "'text' must be a non-empty string"},
      {R"({"messages": [{"role": "robot", "content": "x"}]})", "unknown role 'robot'"},
      {R"({"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "content": "  "}]})", "empty content"},
      {R"({"messages": [{"role": "user", "content": "x"}]})", "no assistant message"},
      {R"({"prompt": "x"})", "missing 'response'"},
      {"{\"prompt\": \"x\xff\", \"response\": \"y\"}", "invalid UTF-8"},
  };
  for (const auto& c : cases) {
    fs::path file = tmp.write("bad.jsonl", std::string(kGoodSft) + c.line + "\n");
    ReadReport report;
    std::string e = error_of([&] { read_sft_jsonl(file, OnError::fail, report); });
    EXPECT_NE(e.find(file.string() + ":5: "), std::string::npos) << e;
    EXPECT_NE(e.find(c.expected), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos);
  }
  // With on_error: skip the same records are counted instead.
  std::string all = kGoodSft;
  for (const auto& c : cases) all += c.line + "\n";
  ReadReport report;
  auto records = read_sft_jsonl(tmp.write("mixed.jsonl", all), OnError::skip, report);
  EXPECT_EQ(records.size(), 3u);
  EXPECT_EQ(report.skipped_total(), cases.size());
  EXPECT_EQ(report.skipped["malformed JSON"], 1u);
  EXPECT_EQ(report.skipped["missing field"], 2u);
}

TEST(Records, PreferencePairs) {
  TempDir tmp;
  fs::path file = tmp.write("p.jsonl",
                            R"({"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."})"
                            "\n"
                            R"({"prompt": [{"role": "user", "content": "2+2?"}], "chosen": [{"role": "assistant", "content": "4"}], "rejected": "5", "domain": "math"})"
                            "\n"
                            R"({"prompt": "x", "chosen": "y"})"
                            "\n");
  ReadReport report;
  std::string e = error_of([&] { read_preference_jsonl(file, OnError::fail, report); });
  EXPECT_NE(e.find(":3: missing 'rejected'"), std::string::npos) << e;
  ReadReport skip_report;
  auto pairs = read_preference_jsonl(file, OnError::skip, skip_report);
  ASSERT_EQ(pairs.size(), 2u);
  EXPECT_EQ(pairs[0].chosen[0].content, "Hi!");
  EXPECT_EQ(pairs[1].rejected[0].role, "assistant");
  EXPECT_EQ(pairs[1].domain, "math");
}

TEST(DataConfig, ParsesAndNamesBadKeys) {
  DataConfig c = config_from(
      "data:\n  sources: [{path: a.jsonl, weight: 2}, {path: b.jsonl}]\n  exclude_domains: [math, code]\n"
      "  max_seq_len: 512\n  overflow: truncate\n  on_error: skip\n");
  EXPECT_EQ(c.sources.size(), 2u);
  EXPECT_EQ(c.sources[0].weight, 2.0);
  EXPECT_EQ(c.exclude_domains, (std::vector<std::string>{"math", "code"}));
  EXPECT_EQ(c.overflow, Overflow::truncate);
  EXPECT_EQ(c.on_error, OnError::skip);

  std::string e = error_of([] { config_from("data:\n  sources: [{path: a.jsonl}]\n  max_seq_lne: 5\n"); });
  EXPECT_NE(e.find("data.max_seq_lne: unknown key (did you mean 'data.max_seq_len'?)"), std::string::npos) << e;
  e = error_of([] { config_from("data:\n  sources: [{path: a.jsonl}]\n  max_seq_len: long\n"); });
  EXPECT_NE(e.find("data.max_seq_len: expected an integer"), std::string::npos) << e;
  e = error_of([] { config_from("data:\n  sources: [{path: a.jsonl, wieght: 2}]\n"); });
  EXPECT_NE(e.find("data.sources[0].wieght: unknown key (did you mean 'data.sources[0].weight'?)"), std::string::npos) << e;
  e = error_of([] { config_from("data:\n  sources: []\n"); });
  EXPECT_NE(e.find("data.sources"), std::string::npos) << e;
  e = error_of([] { config_from("data:\n  sources: [{path: a.jsonl}]\n  overflow: wrap\n"); });
  EXPECT_NE(e.find("'wrap' is not one of: drop, truncate"), std::string::npos) << e;
  e = error_of([] { config_from("data:\n  sources: [{path: a.jsonl}]\n  response_span: eot\n"); });
  EXPECT_NE(e.find("data.response_span"), std::string::npos) << e;
  EXPECT_NE(e.find("rendered, end_of_turn"), std::string::npos) << e;
}

TEST(SftData, DomainsLengthPolicyCacheAndSplit) {
  TempDir tmp;
  std::string text;
  for (int i = 0; i < 30; ++i) text += kGoodSft;
  tmp.write("sft.jsonl", text);
  Tokenizer tokenizer = Tokenizer::load(assets() / "deepseek-llm");
  DataConfig c = config_from("data:\n  sources: [{path: sft.jsonl}]\n  exclude_domains: [math, code]\n  validation_fraction: 0.2\n");
  c.cache_dir = (tmp.path / "cache").string();
  SftData first = prepare_sft_data(c, tokenizer, ChatFormat::deepseek_llm, tmp.path);
  ASSERT_EQ(first.sources.size(), 1u);
  EXPECT_EQ(first.sources[0].records, 90u);
  EXPECT_EQ(first.sources[0].filtered_by_domain, 60u);
  EXPECT_FALSE(first.sources[0].from_cache);
  EXPECT_EQ(first.train.size() + first.validation.size(), 30u);
  EXPECT_EQ(first.validation.size(), 6u);
  for (const auto& e : first.train) EXPECT_EQ(e.domain, "general");

  // Second run: from the token cache, same examples.
  SftData second = prepare_sft_data(c, tokenizer, ChatFormat::deepseek_llm, tmp.path);
  EXPECT_TRUE(second.sources[0].from_cache);
  ASSERT_EQ(second.train.size(), first.train.size());
  for (size_t i = 0; i < first.train.size(); ++i) EXPECT_EQ(second.train[i].ids, first.train[i].ids);

  // A changed file, or changed length settings, is tokenized again.
  tmp.write("sft.jsonl", text + kGoodSft);
  EXPECT_FALSE(prepare_sft_data(c, tokenizer, ChatFormat::deepseek_llm, tmp.path).sources[0].from_cache);
  c.max_seq_len = 18;
  c.overflow = Overflow::drop;
  c.exclude_domains.clear();
  SftData dropped = prepare_sft_data(c, tokenizer, ChatFormat::deepseek_llm, tmp.path);
  EXPECT_FALSE(dropped.sources[0].from_cache);
  EXPECT_GT(dropped.sources[0].dropped_too_long, 0u);
  c.overflow = Overflow::truncate;
  SftData truncated = prepare_sft_data(c, tokenizer, ChatFormat::deepseek_llm, tmp.path);
  EXPECT_GT(truncated.sources[0].truncated + truncated.sources[0].dropped_no_loss, 0u);
  for (const auto& e : truncated.train) EXPECT_LE(e.ids.size(), 18u);

  // Nothing left: a clear error.
  c.include_domains = {"safety"};
  std::string e = error_of([&] { prepare_sft_data(c, tokenizer, ChatFormat::deepseek_llm, tmp.path); });
  EXPECT_NE(e.find("no training examples left"), std::string::npos) << e;
  c.sources[0].path = "missing.jsonl";
  e = error_of([&] { prepare_sft_data(c, tokenizer, ChatFormat::deepseek_llm, tmp.path); });
  EXPECT_NE(e.find("missing.jsonl: data file not found"), std::string::npos) << e;
}

// {"text"} records: BOS + text + EOS, every token trained, no chat template.
TEST(SftData, PlainTextRecordsTrainEveryToken) {
  TempDir tmp;
  tmp.write("text.jsonl", "{\"text\": \"def add(a, b):\\n    return a + b\", \"domain\": \"code\"}\n");
  Tokenizer tokenizer = Tokenizer::load(assets() / "deepseek-coder");
  DataConfig c = config_from("data:\n  sources: [{path: text.jsonl}]\n");
  SftData data = prepare_sft_data(c, tokenizer, ChatFormat::deepseek_coder, tmp.path);
  ASSERT_EQ(data.train.size(), 1u);
  std::vector<int32_t> expected = tokenizer.encode("def add(a, b):\n    return a + b", true);
  expected.push_back(*tokenizer.eos_id());
  EXPECT_EQ(data.train[0].ids, expected);
  EXPECT_EQ(data.train[0].loss_mask, std::vector<uint8_t>(expected.size(), 1));
  EXPECT_EQ(data.train[0].domain, "code");
}

TEST(SftData, EpochWeightsAndPacking) {
  TempDir tmp;
  std::string a, b;
  for (int i = 0; i < 10; ++i) a += R"({"prompt": "Question )" + std::to_string(i) + R"(", "response": "Answer"})" "\n";
  for (int i = 0; i < 10; ++i) b += R"({"prompt": "Other )" + std::to_string(i) + R"(", "response": "Reply"})" "\n";
  tmp.write("a.jsonl", a);
  tmp.write("b.jsonl", b);
  Tokenizer tokenizer = Tokenizer::load(assets() / "deepseek-coder");
  DataConfig c = config_from("data:\n  sources: [{path: a.jsonl, weight: 2}, {path: b.jsonl, weight: 0.5}]\n  max_seq_len: 256\n");
  c.cache_dir = (tmp.path / "cache").string();
  SftData data = prepare_sft_data(c, tokenizer, ChatFormat::deepseek_coder, tmp.path);
  auto order = epoch_order(data, c, 0);
  EXPECT_EQ(order.size(), 25u);  // 2 x 10 + 0.5 x 10
  EXPECT_EQ(order, epoch_order(data, c, 0));
  EXPECT_NE(order, epoch_order(data, c, 1));

  std::vector<const TokenizedExample*> examples;
  for (size_t i : order) examples.push_back(&data.train[i]);
  auto rows = pack_examples(examples, c.max_seq_len, true, 0);
  int64_t tokens = 0;
  for (const auto* e : examples) tokens += static_cast<int64_t>(e->ids.size());
  int64_t real = 0;
  for (const auto& row : rows) {
    ASSERT_EQ(static_cast<int64_t>(row.ids.size()), c.max_seq_len);
    real += row.real_tokens;
    for (size_t t = 0; t < row.ids.size(); ++t) {
      if (row.positions[t] == 0) {
        EXPECT_EQ(row.labels[t], -100);  // no prediction across examples
      }
      if (row.document_ids[t] < 0) {
        EXPECT_EQ(row.labels[t], -100);
      }
    }
  }
  EXPECT_EQ(real, tokens);
  EXPECT_GT(packing_efficiency(rows), 0.7);
  auto free_rows = pack_examples(examples, 4096, false, 0);  // padding-free: one row, no padding
  ASSERT_EQ(free_rows.size(), 1u);
  EXPECT_EQ(static_cast<int64_t>(free_rows[0].ids.size()), tokens);
  EXPECT_DOUBLE_EQ(packing_efficiency(free_rows), 1.0);
}

TEST(PreferenceData, PairsCountProblemsAndPackTogether) {
  TempDir tmp;
  std::string long_prompt(400, 'x');
  for (size_t i = 50; i < long_prompt.size(); i += 50) long_prompt[i] = ' ';
  fs::path file = tmp.write("pairs.jsonl",
                            R"({"prompt": "Say hi", "chosen": "Hi there!", "rejected": "Go away."})"
                            "\n"
                            R"({"prompt": [{"role": "user", "content": "A?"}, {"role": "assistant", "content": "B."}, {"role": "user", "content": "C?"}], "chosen": "D.", "rejected": "E!"})"
                            "\n"
                            R"({"prompt": "Same", "chosen": "Yes", "rejected": "Yes"})"
                            "\n"
                            R"({"prompt": ")" + long_prompt + R"(", "chosen": "a", "rejected": "b"})"
                            "\n");
  Tokenizer tokenizer = Tokenizer::load(assets() / "deepseek-llm");
  DataConfig c = config_from("data:\n  sources: [{path: pairs.jsonl}]\n  max_seq_len: 64\n");
  PairReport report;
  auto pairs = read_preference_pairs(file, c, tokenizer, ChatFormat::deepseek_llm, report);
  EXPECT_EQ(report.records, 4u);
  EXPECT_EQ(report.dropped_count(kIdenticalPair), 1u);
  EXPECT_EQ(report.dropped_count(kPromptTooLong), 1u);
  EXPECT_EQ(report.dropped.at(kIdenticalPair), std::vector<size_t>{3});  // line numbers, for the log
  EXPECT_EQ(report.dropped.at(kPromptTooLong), std::vector<size_t>{4});
  ASSERT_EQ(pairs.size(), 2u);
  // Only the response carries loss, not the prompt's earlier assistant turn.
  auto loss_text = [&](const TokenizedExample& e) {
    std::vector<int32_t> ids;
    for (size_t t = 0; t < e.ids.size(); ++t)
      if (e.loss_mask[t]) ids.push_back(e.ids[t]);
    return tokenizer.decode(ids);
  };
  EXPECT_EQ(loss_text(pairs[1].chosen), " D.<｜end▁of▁sentence｜>");
  EXPECT_EQ(loss_text(pairs[1].rejected), " E!<｜end▁of▁sentence｜>");
  EXPECT_EQ(std::vector<int32_t>(pairs[1].chosen.ids.begin(), pairs[1].chosen.ids.begin() + static_cast<long>(pairs[1].prompt_tokens)),
            std::vector<int32_t>(pairs[1].rejected.ids.begin(), pairs[1].rejected.ids.begin() + static_cast<long>(pairs[1].prompt_tokens)));
  // Packed: each pair's chosen and rejected share a row, as consecutive documents.
  std::vector<std::vector<const TokenizedExample*>> groups;
  for (const auto& p : pairs) groups.push_back({&p.chosen, &p.rejected});
  auto rows = pack_groups(groups, 64, true, 0);
  int64_t tokens = 0;
  for (const auto& p : pairs) tokens += static_cast<int64_t>(p.chosen.ids.size() + p.rejected.ids.size());
  int64_t real = 0;
  for (const auto& r : rows) real += r.real_tokens;
  EXPECT_EQ(real, tokens);
  EXPECT_EQ(rows.size(), 2u);  // a pair of ~40 tokens does not fit twice in 64
}

// The varlen layout of packed and padded rows: every real token once, in row order; each
// cu_seqlens segment is exactly one document of one row (what the dense document mask allows);
// padding dropped; the longest document as max_seqlen.
TEST(Varlen, LayoutFollowsDocumentsAndDropsPadding) {
  std::vector<TokenizedExample> examples;
  for (int n : {5, 3, 7, 2, 6}) examples.push_back({std::vector<int32_t>(static_cast<size_t>(n), 9), std::vector<uint8_t>(static_cast<size_t>(n), 1)});
  std::vector<const TokenizedExample*> pointers;
  for (const auto& e : examples) pointers.push_back(&e);
  for (bool pad : {false, true}) {
    const std::vector<PackedRow> rows = pack_examples(pointers, 10, pad, 0);
    ASSERT_GE(rows.size(), 2u);
    const VarlenLayout layout = varlen_layout(rows, 0, rows.size());
    size_t width = 0;
    int64_t real = 0;
    for (const auto& row : rows) width = std::max(width, row.ids.size()), real += row.real_tokens;
    EXPECT_EQ(layout.tokens(), real) << "pad " << pad;
    EXPECT_EQ(layout.cu_seqlens.front(), 0);
    EXPECT_EQ(layout.cu_seqlens.back(), real);
    EXPECT_EQ(layout.cu_seqlens.size(), examples.size() + 1) << "one sequence per document";
    EXPECT_EQ(layout.max_seqlen, 7);
    for (size_t s = 0; s + 1 < layout.cu_seqlens.size(); ++s) {
      std::set<std::pair<size_t, int64_t>> owners;  // (row, document) of the segment's tokens
      for (int32_t k = layout.cu_seqlens[s]; k < layout.cu_seqlens[s + 1]; ++k) {
        const auto flat = static_cast<size_t>(layout.token_index[static_cast<size_t>(k)]);
        const size_t r = flat / width, t = flat % width;
        ASSERT_LT(t, rows[r].document_ids.size());
        EXPECT_GE(rows[r].document_ids[t], 0) << "padding in the stream";
        owners.insert({r, rows[r].document_ids[t]});
        if (k > layout.cu_seqlens[s]) EXPECT_EQ(flat, static_cast<size_t>(layout.token_index[static_cast<size_t>(k - 1)]) + 1);
      }
      EXPECT_EQ(owners.size(), 1u) << "segment " << s << " spans documents";
    }
  }
  // A document that resumes after another is not a contiguous sequence.
  PackedRow broken;
  broken.ids = {1, 2, 3};
  broken.document_ids = {0, 1, 0};
  EXPECT_NE(error_of([&] { varlen_layout({broken}, 0, 1); }).find("returns to document 0 at token 2"), std::string::npos);
}
