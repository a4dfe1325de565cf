// The repetition detector on crafted token sequences.
#include <gtest/gtest.h>

#include <iostream>
#include <tuple>

#include "data/tokenizer.h"
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
  // The period breaks in the last unit: not exactly periodic any more, but still a loop.
  auto broken = repeat(distinct(10), {1, 2, 3}, 20);
  broken.back() = 99;
  auto r = find_repetition(broken, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, Repetition::Kind::loop);
  // A loop the model left for good: the second half is new text.
  EXPECT_FALSE(find_repetition(repeat(repeat(distinct(10), {1, 2, 3}, 60), distinct(300), 1), false));
  // Only two repeats of a unit: not enough.
  EXPECT_FALSE(find_repetition(repeat(distinct(10), distinct(8, 1), 2), false));
  // A periodic tail that covers too little of a long response.
  EXPECT_FALSE(find_repetition(repeat(distinct(400), {9}, 20), false));
  // A unit longer than max_unit.
  RepetitionRule rule;
  rule.max_unit = 16;
  // (the loop rule, which has no unit length, still sees a loop)
  auto longer = find_repetition(repeat({}, distinct(20), 5), false, rule);
  ASSERT_TRUE(longer);
  EXPECT_EQ(longer->kind, Repetition::Kind::loop);
}

// The prompts file and the monitor section: bad input names the file:line or key.
TEST(RepetitionEval, BadPromptsAndSettingsNameTheProblem) {
  dsalign::testing::TempDir tmp;
  auto error = [&](const std::string& text) {
    std::filesystem::path file = tmp.write("p.jsonl", text);
    return dsalign::testing::error_of([&] { read_eval_prompts(file, 0); });
  };
  EXPECT_NE(error("{\"prompt\": \"a\"}\n{\"prompt\": \n").find("p.jsonl:2: not valid JSON"), std::string::npos);
  EXPECT_NE(error("{\"question\": \"a\"}\n").find("p.jsonl:1: expected a non-empty \"prompt\" string or a \"messages\" array"),
            std::string::npos);
  EXPECT_NE(error("{\"messages\": [{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"assistant\", \"content\": \"b\"}]}\n")
                .find("p.jsonl:1: the conversation must end with a user turn"),
            std::string::npos);
  EXPECT_NE(error("{\"messages\": [{\"role\": \"robot\", \"content\": \"a\"}]}\n").find("p.jsonl:1: message role 'robot'"),
            std::string::npos);
  EXPECT_NE(error("\n\n").find("p.jsonl: no prompts"), std::string::npos);
  EXPECT_NE(dsalign::testing::error_of([&] { read_eval_prompts(tmp.path / "missing.jsonl", 0); }).find("cannot open"),
            std::string::npos);
  auto prompts = read_eval_prompts(tmp.write("ok.jsonl", "{\"id\": \"x\", \"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n{\"prompt\": \"c\"}\n"), 2);
  ASSERT_EQ(prompts.size(), 2u);
  EXPECT_EQ(prompts[0].id, "x");
  EXPECT_EQ(prompts[1].id, "2");
  // Conversations, as the data files write them, ending with the user turn to answer.
  prompts = read_eval_prompts(tmp.write("m.jsonl", "{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, "
                                                   "{\"role\": \"user\", \"content\": \"Hi\"}, {\"role\": \"assistant\", "
                                                   "\"content\": \"Hello\"}, {\"role\": \"user\", \"content\": \"Bye\"}]}\n"), 0);
  ASSERT_EQ(prompts.size(), 1u);
  EXPECT_EQ(prompts[0].prompt, "Bye");
  ASSERT_EQ(prompts[0].messages.size(), 4u);
  EXPECT_EQ(prompts[0].messages[0].role, "system");

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

// Loops that vary: substitutions, insertions, short and long units; the report keeps the exact
// rule's unit when that rule applies.
TEST(Repetition, LoopsWithVariationsAreCaught) {
  auto vary = [](int unit_length, int total, int every, bool insert) {
    std::vector<int32_t> out = distinct(40, 5000);  // a prompt-like start
    const std::vector<int32_t> unit = distinct(unit_length, 100);
    for (int rep = 0; static_cast<int>(out.size()) < total; ++rep) {
      std::vector<int32_t> u = unit;
      if (rep % every == every - 1) {
        if (insert)
          u.insert(u.begin() + unit_length / 2, 9000 + rep);
        else
          u[static_cast<size_t>(rep % unit_length)] = 9000 + rep;
      }
      out.insert(out.end(), u.begin(), u.end());
    }
    out.resize(static_cast<size_t>(total));
    return out;
  };
  for (auto [unit_length, every, insert] : std::vector<std::tuple<int, int, bool>>{
           {6, 3, false}, {6, 2, true}, {12, 1, false}, {40, 1, false}, {40, 1, true}, {64, 1, false}}) {
    auto r = find_repetition(vary(unit_length, 512, every, insert), false);
    ASSERT_TRUE(r) << "unit " << unit_length << " every " << every << (insert ? " insertion" : " substitution");
    EXPECT_EQ(r->kind, Repetition::Kind::loop);
    EXPECT_GE(r->coverage, 0.9);
    EXPECT_FALSE(find_repetition(vary(unit_length, 512, every, insert), true)) << "terminated responses never count";
  }
  // The limit of the rule: a 3-token loop with a token changed every other repeat (one in six)
  // covers 0.84 of its window, natural code up to 0.83 (ProseAndCodeCutAtTheLimitAreNotLoops).
  EXPECT_FALSE(find_repetition(vary(3, 512, 2, false), false));
  auto exact = find_repetition(repeat(distinct(10), {7, 8}, 100), false);
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->kind, Repetition::Kind::exact);
  EXPECT_EQ(exact->unit.size(), 2u);
  EXPECT_EQ(exact->repeats, 100);
}

namespace {

// The shipped held-out prompts of one source, joined into one long text.
std::string joined_prompts(const std::string& source) {
  std::string text;
  for (const EvalPrompt& p : read_eval_prompts(std::string(DSALIGN_SOURCE_DIR) + "/assets/prompts/repetition_heldout.jsonl", 0))
    if (p.id.rfind(source + "/", 0) == 0) text += p.prompt + "\n\n";
  return text;
}

}  // namespace

// The loop the quickstart's base model produced for "What is the capital of France?" (issue 13),
// continued with the same variations to 512 tokens, is caught; the exact rule alone missed it.
TEST(Repetition, TheQuickstartBaseModelsLoopIsCaught) {
  Tokenizer tok = Tokenizer::load(std::string(DSALIGN_SOURCE_DIR) + "/assets/tokenizers/deepseek-coder");
  std::string text = "return ";
  std::vector<int32_t> ids;
  uint32_t state = 12345;  // a fixed pseudo-random choice of "2. " (3 in 4) or "2 is " (1 in 4)
  while (ids.size() < 512) {
    state = state * 1664525u + 1013904223u;
    text += (state >> 24) % 4 == 0 ? "2 is " : "2. ";
    ids = tok.encode(text);
  }
  ids.resize(512);
  EXPECT_FALSE(find_repetition(ids, false, RepetitionRule{.max_unit = 64, .min_repeats = 3, .min_tail_fraction = 0.25,
                                                          .loop_min_coverage = 2.0}))
      << "the exact rule alone (loop rule disabled) should miss this loop";
  auto r = find_repetition(ids, false);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->kind, Repetition::Kind::loop);
}

// Negatives: real prose (MT-Bench's questions), Chinese prose (LongBench-Write's prompts) and code
// with docstrings (HumanEval's prompts), each joined into one text and cut into 512-token
// "responses that hit the limit" every 64 tokens: none may count as repetitive. The false-positive
// rate printed here is the README's.
TEST(Repetition, ProseAndCodeCutAtTheLimitAreNotLoops) {
  Tokenizer tok = Tokenizer::load(std::string(DSALIGN_SOURCE_DIR) + "/assets/tokenizers/deepseek-coder");
  for (const char* source : {"mt_bench", "longbench_write_zh", "HumanEval"}) {
    const std::vector<int32_t> ids = tok.encode(joined_prompts(source));
    int64_t windows = 0, flagged = 0;
    for (size_t start = 0; start + 512 <= ids.size(); start += 64, ++windows) {
      const std::vector<int32_t> response(ids.begin() + static_cast<std::ptrdiff_t>(start),
                                          ids.begin() + static_cast<std::ptrdiff_t>(start + 512));
      if (auto r = find_repetition(response, false)) {
        ++flagged;
        ADD_FAILURE() << source << " window at token " << start << " counted as " << repetition_kind_name(r->kind)
                      << " (coverage " << r->coverage << "): " << tok.decode(response);
      }
    }
    ASSERT_GT(windows, 10) << source;
    std::cout << source << ": " << flagged << " of " << windows << " 512-token windows counted as repetitive\n";
  }
}
