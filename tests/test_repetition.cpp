// The repetition detector on crafted token sequences.
#include <gtest/gtest.h>

#include "eval/repetition.h"
#include "test_util.h"

using namespace dsalign;

namespace {
std::vector<int32_t> repeat(const std::vector<int32_t>& prefix, const std::vector<int32_t>& unit, int times) {
  std::vector<int32_t> out = prefix;
  for (int i = 0; i < times; ++i) out.insert(out.end(), unit.begin(), unit.end());
  return out;
}
std::vector<int32_t> distinct(int n, int32_t start = 1000) {
  std::vector<int32_t> out;
  for (int i = 0; i < n; ++i) out.push_back(start + i);
  return out;
}
}  // namespace

TEST(Repetition, ShortUnit) {
  auto r = find_repetition(repeat(distinct(10), {7}, 50), false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->unit_length, 1);
  EXPECT_EQ(r->periodic_tokens, 50);
}

TEST(Repetition, LongUnitFindsTheSmallestPeriod) {
  auto unit = distinct(50, 5000);
  auto r = find_repetition(repeat(distinct(20), unit, 5), false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->unit_length, 50);
  EXPECT_EQ(r->periodic_tokens, 250);
  // "a b a b ..." is period 2, not 4.
  EXPECT_EQ(find_repetition(repeat({}, {1, 2}, 20), false)->unit_length, 2);
}

TEST(Repetition, TerminatedIsNeverRepetitive) {
  EXPECT_FALSE(find_repetition(repeat({}, {3, 4, 5}, 30), true));
}

TEST(Repetition, LongNonRepeatingIsNot) {
  EXPECT_FALSE(find_repetition(distinct(500), false));
}

TEST(Repetition, AlmostPeriodicAndShortTailsAreNot) {
  // The period breaks in the last unit: the model left the loop.
  auto broken = repeat(distinct(10), {1, 2, 3}, 20);
  broken.back() = 99;
  EXPECT_FALSE(find_repetition(broken, false));
  // Only two repeats of a unit: not enough.
  EXPECT_FALSE(find_repetition(repeat(distinct(10), distinct(8, 1), 2), false));
  // A periodic tail that covers too little of a long response.
  EXPECT_FALSE(find_repetition(repeat(distinct(400), {9}, 20), false));
  // A unit longer than max_unit.
  RepetitionRule rule;
  rule.max_unit = 16;
  EXPECT_FALSE(find_repetition(repeat({}, distinct(20), 5), false, rule));
}

// The prompts file and the monitor section: bad input names the file:line or key.
TEST(RepetitionEval, BadPromptsAndSettingsNameTheProblem) {
  dsalign::testing::TempDir tmp;
  auto error = [&](const std::string& text) {
    std::filesystem::path file = tmp.write("p.jsonl", text);
    return dsalign::testing::error_of([&] { read_eval_prompts(file, 0); });
  };
  EXPECT_NE(error("{\"prompt\": \"a\"}\n{\"prompt\": \n").find("p.jsonl:2: not valid JSON"), std::string::npos);
  EXPECT_NE(error("{\"question\": \"a\"}\n").find("p.jsonl:1: expected an object with a non-empty \"prompt\" string"),
            std::string::npos);
  EXPECT_NE(error("\n\n").find("p.jsonl: no prompts"), std::string::npos);
  EXPECT_NE(dsalign::testing::error_of([&] { read_eval_prompts(tmp.path / "missing.jsonl", 0); }).find("cannot open"),
            std::string::npos);
  auto prompts = read_eval_prompts(tmp.write("ok.jsonl", "{\"id\": \"x\", \"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n{\"prompt\": \"c\"}\n"), 2);
  ASSERT_EQ(prompts.size(), 2u);
  EXPECT_EQ(prompts[0].id, "x");
  EXPECT_EQ(prompts[1].id, "2");

  YAML::Node node = YAML::Load("{prompts: p.jsonl, max_new_tokens: 0}");
  YamlReader reader(node, "monitor.repetition", "r.yaml");
  EXPECT_NE(dsalign::testing::error_of([&] { parse_repetition_eval_config(reader, tmp.path); })
                .find("r.yaml: monitor.repetition.max_new_tokens: must be at least 1, got 0"),
            std::string::npos);
  YAML::Node typo = YAML::Load("{prompts: p.jsonl, max_new_token: 5}");
  YamlReader typo_reader(typo, "monitor.repetition", "r.yaml");
  EXPECT_NE(dsalign::testing::error_of([&] { parse_repetition_eval_config(typo_reader, tmp.path); })
                .find("did you mean 'monitor.repetition.max_new_tokens'"),
            std::string::npos);
}
