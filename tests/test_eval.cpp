// eval/: lm-evaluation-harness's scoring rules (word count, rolling windows, multiple-choice
// metrics, standard error) on crafted inputs; the data files' errors; the request tokenisation;
// batched scoring against scoring one request at a time; and `dsalign eval` from the command line.
// Equality with lm-eval itself is tests/test_eval_parity.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "eval/eval_metrics.h"
#include "eval/eval_suite.h"
#include "eval/gen_tasks.h"
#include "eval/repetition.h"
#include "eval/loglik.h"
#include "eval/scored_tasks.h"
#include "model/checkpoint.h"
#include "model/generate.h"
#include "process_util.h"
#include "test_util.h"
#include "util/files.h"

namespace dsalign {
namespace {

using testing::error_of;
using testing::TempDir;
namespace fs = std::filesystem;

TEST(EvalMetrics, WordCountIsPythonsSplitOnWhitespace) {
  EXPECT_EQ(python_word_count("one two  three"), 3);
  EXPECT_EQ(python_word_count(" leading"), 2);  // re.split gives a leading ""
  EXPECT_EQ(python_word_count("trailing "), 2);
  EXPECT_EQ(python_word_count(""), 1);
  EXPECT_EQ(python_word_count("a\u00a0b\u3000c\td\ne"), 5);  // no-break and ideographic spaces split
  EXPECT_EQ(python_word_count("深度求索"), 1);
  EXPECT_EQ(python_length("café"), 4);
  EXPECT_EQ(python_length("北京"), 2);
}

TEST(EvalMetrics, RollingWindowsPredictEveryTokenOnce) {
  std::vector<int32_t> tokens;
  for (int i = 0; i < 23; ++i) tokens.push_back(100 + i);
  for (int64_t max_length : {1, 4, 10, 23, 50}) {
    const auto windows = rolling_windows(tokens, 7, max_length);
    std::vector<int32_t> predicted;
    for (size_t w = 0; w < windows.size(); ++w) {
      const auto& win = windows[w];
      // The model reads context + continuation[:-1]: at most max_length tokens.
      EXPECT_LE(static_cast<int64_t>(win.context.size() + win.continuation.size() - 1), max_length);
      EXPECT_LE(static_cast<int64_t>(win.continuation.size()), max_length);
      if (w == 0) {
        EXPECT_EQ(win.context, std::vector<int32_t>{7});
      } else {
        // Conditioned on exactly the tokens before its predictions.
        const int32_t first = win.continuation.front();
        EXPECT_EQ(win.context.back(), first - 1);
      }
      predicted.insert(predicted.end(), win.continuation.begin(), win.continuation.end());
    }
    EXPECT_EQ(predicted, tokens) << max_length;
  }
  EXPECT_TRUE(rolling_windows({}, 7, 4).empty());
}

TEST(EvalMetrics, MultipleChoiceScoresAndTies) {
  McQuestion q;
  q.choices = {"ab", "abcdef", "é"};
  q.gold = 1;
  // ll: -4 (per char -2), -6 (per char -1), -3 (per char -3, per byte -1.5).
  McScores s = score_question(q, {-4, -6, -3});
  EXPECT_EQ(s.pred, 2);
  EXPECT_EQ(s.acc, 0);
  EXPECT_EQ(s.pred_norm, 1);
  EXPECT_EQ(s.acc_norm, 1);
  EXPECT_EQ(s.acc_bytes, 1);  // -2, -1, -1.5: choice 1
  std::vector<double> unconditional = {-1, -5.5, -1};
  s = score_question(q, {-4, -6, -3}, &unconditional);
  ASSERT_TRUE(s.acc_mutual_info.has_value());
  EXPECT_EQ(*s.acc_mutual_info, 1);  // -3, -0.5, -2
  EXPECT_EQ(score_question(q, {-1, -1, -1}).pred, 0);  // ties: the first, as np.argmax
}

TEST(EvalMetrics, StandardErrorIsSampleStddevOverSqrtN) {
  MeanStderr m = mean_stderr({1, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.mean, 0.75);
  EXPECT_NEAR(m.stderr_, std::sqrt(0.25) / 2, 1e-12);  // sample variance 0.25
  PerplexityTotals t{-10.0 * std::log(2.0), 5, 2};
  EXPECT_NEAR(t.bits_per_byte(), 2.0, 1e-12);
  EXPECT_NEAR(t.byte_perplexity(), 4.0, 1e-12);
  EXPECT_NEAR(t.word_perplexity(), 32.0, 1e-9);
}

TEST(EvalData, BadLinesNameFileAndLine) {
  TempDir tmp;
  auto path = tmp.write("mc.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n\n{\"query\": \"q\", \"choices\": [\"a\"], \"gold\": 0}\n");
  EXPECT_NE(error_of([&] { read_mc_questions(path, 0); }).find("mc.jsonl:3: expected \"choices\", an array of at least two strings"),
            std::string::npos);
  path = tmp.write("gold.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 2}\n");
  EXPECT_NE(error_of([&] { read_mc_questions(path, 0); }).find("gold.jsonl:1: \"gold\" 2 is not the index of a choice (0..1)"),
            std::string::npos);
  path = tmp.write("ll.jsonl", "{\"context\": \"a\"}\n");
  EXPECT_NE(error_of([&] { read_loglik_requests(path, 0); }).find("ll.jsonl:1: expected a string \"continuation\""),
            std::string::npos);
  path = tmp.write("bad.jsonl", "{not json\n");
  EXPECT_NE(error_of([&] { read_documents(path, 0); }).find("bad.jsonl:1: not valid JSON"), std::string::npos);
  EXPECT_NE(error_of([&] { read_documents(tmp.path / "missing.jsonl", 0); }).find("missing.jsonl: cannot open the file"),
            std::string::npos);
  path = tmp.write("limit.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"}\n");
  EXPECT_EQ(read_documents(path, 2).size(), 2u);
  // Partial scoring (WinoGrande) and generation records.
  path = tmp.write("wino.jsonl", "{\"contexts\": [\"a\"], \"continuation\": \" b\", \"choices\": [\"x\", \"y\"], \"gold\": 0}\n");
  EXPECT_NE(error_of([&] { read_mc_questions(path, 0); }).find("wino.jsonl:1: \"contexts\" must be an array of strings, one per choice"),
            std::string::npos);
  path = tmp.write("noquery.jsonl", "{\"choices\": [\"x\", \"y\"], \"gold\": 0}\n");
  EXPECT_NE(error_of([&] { read_mc_questions(path, 0); }).find("noquery.jsonl:1: expected a string \"query\" (or \"contexts\""),
            std::string::npos);
  path = tmp.write("gen.jsonl", "{\"prompt\": \"Question: 1 + 1?\"}\n");
  EXPECT_NE(error_of([&] { read_gen_problems(path, false, 0); }).find("gen.jsonl:1: expected a string \"answer\""), std::string::npos);
  path = tmp.write("he.jsonl", "{\"task_id\": [1], \"prompt\": \"def f():\", \"test\": \"\", \"entry_point\": \"f\"}\n");
  EXPECT_NE(error_of([&] { read_gen_problems(path, true, 0); }).find("he.jsonl:1: \"task_id\" must be a string or an integer"),
            std::string::npos);
  path = tmp.write("he2.jsonl", "{\"prompt\": \"def f():\", \"test\": \"\"}\n");
  EXPECT_NE(error_of([&] { read_gen_problems(path, true, 0); }).find("he2.jsonl:1: expected a string \"entry_point\""),
            std::string::npos);
  EXPECT_EQ(read_gen_problems(tmp.write("ids.jsonl", "\n{\"prompt\": \"p\", \"answer\": \"1\"}\n"), false, 0)[0].id, "2")
      << "without an id, a problem is named by its line";
}

struct EvalModel {
  TempDir tmp;
  fs::path dir = tmp.path / "model";
  EvalModel() {
    SaveOptions save;
    save.dtype = torch::kFloat32;
    ModelConfig c = *model_preset("tiny-llm");
    c.max_position_embeddings = 32;
    init_checkpoint(c, 0, dir, save);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-llm" / f, dir / f);
  }
};

TEST(EvalLoglik, TokenisationFollowsLmEvalsRules) {
  EvalModel m;
  Tokenizer tok = Tokenizer::load(m.dir);
  // Trailing spaces move to the continuation; the pair is encoded as one string.
  TokenizedRequest r = tokenize_request(tok, {"The capital is ", "Paris"});
  EXPECT_EQ(r.context, tok.encode("The capital is"));
  std::vector<int32_t> whole = r.context;
  whole.insert(whole.end(), r.continuation.begin(), r.continuation.end());
  EXPECT_EQ(whole, tok.encode("The capital is Paris"));
  // An empty context is the BOS token.
  r = tokenize_request(tok, {"", "Hello"});
  EXPECT_EQ(r.context, std::vector<int32_t>{*tok.bos_id()});
  EXPECT_EQ(r.continuation, tok.encode("Hello"));
}

// Batching (sorted, right-padded) and left truncation change nothing: each request scored alone
// on exactly what the model reads gives the same log-likelihood.
TEST(EvalLoglik, BatchedScoringEqualsOneAtATime) {
  EvalModel m;
  DecoderOptions o;
  CausalLM model = load_model(m.dir, o);
  Tokenizer tok = Tokenizer::load(m.dir);
  std::vector<TokenizedRequest> requests;
  for (const char* ctx : {"a", "The quick brown fox", "", "深度求索 is a company that builds language models and "
                                                          "this context is long enough to be cut from the left"})
    requests.push_back(tokenize_request(tok, {ctx, " jumps over"}));
  const auto batched = score_requests(model, requests, 32, 3);
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto alone = score_requests(model, {requests[i]}, 32, 1);
    EXPECT_NEAR(batched[i].loglik, alone[0].loglik, 1e-4) << i;
    EXPECT_EQ(batched[i].is_greedy, alone[0].is_greedy);
    EXPECT_EQ(batched[i].tokens, static_cast<int64_t>(requests[i].continuation.size()));
    EXPECT_LT(batched[i].loglik, 0);
  }
}

// Choices that share a context are scored in one row (the context once): the same numbers as
// scoring each request alone, including one-token continuations and a truncated request.
TEST(EvalLoglik, SharedContextRowsEqualRequestsAlone) {
  EvalModel m;
  CausalLM model = load_model(m.dir, DecoderOptions{});
  Tokenizer tok = Tokenizer::load(m.dir);
  std::vector<TokenizedRequest> requests;
  // The first context is long enough to be shared (16 tokens or more), the second is not.
  for (const char* ctx : {"Question: which one of these four things is a fruit that grows on a tree?\nAnswer:", "2 + 2 ="})
    for (const char* choice : {" apple", " a chair by the window", " 4", " river"}) requests.push_back(tokenize_request(tok, {ctx, choice}));
  ASSERT_GE(requests[0].context.size(), 16u);
  ASSERT_LE(requests[0].context.size() + requests[1].continuation.size(), 33u) << "must fit the model whole to be shared";
  requests.push_back(tokenize_request(tok, {"", " apple"}));
  requests.push_back(tokenize_request(tok, {"", " 4"}));
  const auto together = score_requests(model, requests, 32, 4, {}, /*min_shared_context=*/16);
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto alone = score_requests(model, {requests[i]}, 32, 1);
    EXPECT_NEAR(together[i].loglik, alone[0].loglik, 1e-4) << i;
    EXPECT_EQ(together[i].is_greedy, alone[0].is_greedy) << i;
  }
  // The plain reference: each request's tokens through forward(), log_softmax, summed.
  for (size_t i : {size_t{1}, size_t{6}}) {
    std::vector<int64_t> all(requests[i].context.begin(), requests[i].context.end());
    all.insert(all.end(), requests[i].continuation.begin(), requests[i].continuation.end());
    torch::Tensor ids = torch::tensor(all).unsqueeze(0);
    torch::Tensor logp = torch::log_softmax(model->forward({ids}).to(torch::kFloat64), -1)[0];
    double expected = 0;
    const size_t c = requests[i].context.size();
    for (size_t k = 0; k < requests[i].continuation.size(); ++k)
      expected += logp[static_cast<int64_t>(c + k - 1)][requests[i].continuation[k]].item<double>();
    EXPECT_NEAR(together[i].loglik, expected, 1e-4) << i;
  }
}

TEST(EvalCli, RunsEachTaskAndReportsBadInput) {
  EvalModel m;
  const std::string cli = DSALIGN_CLI, model = " --model " + m.dir.string();
  m.tmp.write("mc.jsonl", "{\"query\": \"Pick one:\", \"choices\": [\"yes\", \"no\"], \"gold\": 1}\n"
                          "{\"query\": \"Again:\", \"choices\": [\"a\", \"b\", \"c\"], \"gold\": 0}\n");
  m.tmp.write("docs.jsonl", "{\"text\": \"Some text that spans more than one window of thirty-two tokens, so that the "
                            "rolling windows are exercised from the command line as well.\"}\n");
  m.tmp.write("ll.jsonl", "{\"context\": \"2 + 2 =\", \"continuation\": \" 4\"}\n");
  const fs::path& d = m.tmp.path;
  auto run = [&](const std::string& args) {
    return std::system((cli + " eval " + args + " > " + (d / "stdout").string() + " 2> " + (d / "stderr").string()).c_str());
  };
  ASSERT_EQ(run("mc" + model + " --data " + (d / "mc.jsonl").string() + " --unconditional --out " + (d / "mc.out").string()), 0)
      << read_text_file(d / "stderr");
  EXPECT_NE(read_text_file(d / "stdout").find("| acc_mutual_info |"), std::string::npos);
  const std::string mc = read_text_file(d / "mc.out");
  EXPECT_NE(mc.find("\"questions\":2"), std::string::npos) << mc;
  ASSERT_EQ(run("bpb" + model + " --text " + (d / "docs.jsonl").string() + " --out " + (d / "bpb.out").string()), 0)
      << read_text_file(d / "stderr");
  EXPECT_NE(read_text_file(d / "bpb.out").find("\"windows\":"), std::string::npos);
  ASSERT_EQ(run("loglik" + model + " --requests " + (d / "ll.jsonl").string() + " --out " + (d / "ll.out").string()), 0)
      << read_text_file(d / "stderr");
  EXPECT_NE(read_text_file(d / "ll.out").find("\"is_greedy\":"), std::string::npos);
  m.tmp.write("gsm8k.jsonl", "{\"prompt\": \"Question: 2 + 2?\\nAnswer:\", \"answer\": \"4\"}\n"
                             "{\"id\": 7, \"prompt\": \"Question: 3 + 4?\\nAnswer:\", \"answer\": \"7\"}\n");
  ASSERT_EQ(run("gen --task gsm8k" + model + " --data " + (d / "gsm8k.jsonl").string() + " --max-new-tokens 4 --out " +
                (d / "gen.out").string()),
            0)
      << read_text_file(d / "stderr");
  EXPECT_NE(read_text_file(d / "stdout").find("| gsm8k | exact_match |"), std::string::npos) << read_text_file(d / "stdout");
  const std::string gen = read_text_file(d / "gen.out");
  EXPECT_NE(gen.find("\"problems\":2"), std::string::npos) << gen;
  EXPECT_NE(gen.find("\"id\":\"7\""), std::string::npos) << gen;
  EXPECT_NE(run("gen --task gsm8k" + model + " --data " + (d / "gsm8k.jsonl").string() + " --max-new-tokens 40"), 0);
  EXPECT_NE(read_text_file(d / "stderr").find("no room for the prompt"), std::string::npos) << read_text_file(d / "stderr");
  EXPECT_NE(run("gen --task nope" + model + " --data " + (d / "gsm8k.jsonl").string()), 0);
  EXPECT_NE(read_text_file(d / "stderr").find("unknown generation task 'nope'"), std::string::npos);
  m.tmp.write("he.jsonl", "{\"task_id\": \"t/0\", \"prompt\": \"def one():\\n\", \"test\": "
                          "\"def check(f):\\n    assert f() == 1\\n\", \"entry_point\": \"one\"}\n");
  const int humaneval = run("gen --task humaneval" + model + " --data " + (d / "he.jsonl").string() +
                            " --max-new-tokens 4 --timeout 3 --out " + (d / "he.out").string());
  if (read_text_file(d / "stderr").find("sandbox: cannot") == std::string::npos) {
    ASSERT_EQ(humaneval, 0) << read_text_file(d / "stderr");
    EXPECT_NE(read_text_file(d / "stdout").find("| humaneval | pass@1 | 0.0000 |"), std::string::npos) << read_text_file(d / "stdout");
    EXPECT_NE(read_text_file(d / "he.out").find("\"outcome\":"), std::string::npos);
  }
  // Bad input: one line naming what is wrong, non-zero exit.
  m.tmp.write("bad.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"]}\n");
  EXPECT_NE(run("mc" + model + " --data " + (d / "bad.jsonl").string()), 0);
  EXPECT_NE(read_text_file(d / "stderr").find("bad.jsonl:1: expected an integer \"gold\""), std::string::npos)
      << read_text_file(d / "stderr");
  EXPECT_NE(run("mc" + model + " --data " + (d / "mc.jsonl").string() + " --batch-size 0"), 0);
  EXPECT_NE(read_text_file(d / "stderr").find("--batch-size must be at least 1"), std::string::npos);
  EXPECT_NE(run("perplexity" + model), 0);
  EXPECT_NE(read_text_file(d / "stderr").find("unknown eval task 'perplexity'"), std::string::npos);
}

// SIGINT during eval: eval writes its report only at the end (through a temporary name), so the
// signal's default action ends it at once, leaving no report and no temporary file.
TEST(EvalCli, SigintEndsItLeavingNoReport) {
  using namespace dsalign::testing;
  EvalModel m;
  std::string data;
  for (int i = 0; i < 20000; ++i)
    data += "{\"query\": \"Question " + std::to_string(i) + ": pick one\", \"choices\": [\"yes\", \"no\", \"maybe\"], \"gold\": 1}\n";
  m.tmp.write("mc.jsonl", data);
  const fs::path out = m.tmp.path / "mc.out", log = m.tmp.path / "log";
  const pid_t pid = start_command("exec " + std::string(DSALIGN_CLI) + " eval mc --model " + m.dir.string() + " --data " +
                                  (m.tmp.path / "mc.jsonl").string() + " --out " + out.string() + " > " + log.string() + " 2>&1");
  ASSERT_TRUE(wait_until([&] { return fs::exists(log) && read_text_file(log).find("requests") != std::string::npos; }, 60))
      << read_text_file(log);
  ::kill(pid, SIGINT);
  ASSERT_EQ(wait_for_exit(pid, 5), 128 + SIGINT) << "not ended by SIGINT within 5 s (finished first?)\n" << read_text_file(log);
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(temporaries(m.tmp.path), std::vector<std::string>{});
}

// The chat task asks what `dsalign generate` asks (one user turn in the chat format, greedy until
// the end of the turn) and compares after whitespace normalisation: the model's own answer,
// spaced differently, is an exact match; anything else is not.
TEST(EvalGen, ChatTaskScoresTheChatAnswer) {
  EvalModel m;
  Tokenizer tokenizer = Tokenizer::load(m.dir);
  CausalLM model = load_model(m.dir, {});
  const ChatFormat format = resolve_chat_format("auto", tokenizer);
  const std::vector<std::string> prompts = {"Greet Ann.", "What is 2 plus 2?"};
  const std::vector<Generation> own =
      generate_greedy(model, chat_prompt_ids(tokenizer, format, prompts), chat_generation_options(tokenizer, format, 8, 2));
  std::string answer = tokenizer.decode(own[0].tokens, true);
  for (char& c : answer)
    if (c == ' ') c = '\n';
  std::vector<GenProblem> problems(2);
  problems[0].prompt = prompts[0];
  problems[0].answer = "  " + answer + " \t";
  problems[1].prompt = prompts[1];
  problems[1].answer = "4";
  GenTaskOptions options;
  options.max_new_tokens = 8;
  options.progress = false;
  const GenReport report = run_generation_task(model, tokenizer, GenTaskKind::chat, problems, options);
  EXPECT_TRUE(report.samples[0].correct) << "'" << report.samples[0].answer << "' vs '" << problems[0].answer << "'";
  EXPECT_FALSE(report.samples[1].correct);
  EXPECT_DOUBLE_EQ(report.exact_match.mean, 0.5);
  // The repetition ratio of the answers: those that ran to max_new_tokens and loop, as
  // find_repetition judges the generated tokens.
  double repetitive = 0;
  for (size_t i = 0; i < own.size(); ++i) {
    const bool loops = find_repetition(own[i].tokens, own[i].terminated).has_value();
    EXPECT_EQ(report.samples[i].generated.repetitive, loops) << i;
    repetitive += loops ? 0.5 : 0.0;
  }
  EXPECT_DOUBLE_EQ(report.repetition_ratio.mean, repetitive);
  EXPECT_EQ(normalise_whitespace("\n  Hello,\t\tAnn!  \n"), "Hello, Ann!");
  EXPECT_EQ(normalise_whitespace(" \t\n"), "");
  GenSample s;
  s.generated.text = "Hello, Ann! Hello, Ann!";
  GenProblem p;
  p.answer = "Hello, Ann!";
  score_answer(GenTaskKind::chat, p, s);
  EXPECT_FALSE(s.correct);
  EXPECT_TRUE(s.correct_flexible);
}

TEST(EvalSuite, ReadsTheShippedSuites) {
  const fs::path recipes = fs::path(DSALIGN_SOURCE_DIR) / "recipes/eval";
  const EvalSuite quick = read_eval_suite(recipes / "quick.yaml");
  EXPECT_EQ(quick.name, "quick");
  ASSERT_EQ(quick.tasks.size(), 7u);
  for (const SuiteTask& t : quick.tasks) EXPECT_TRUE(fs::is_regular_file(t.data)) << t.name;
  EXPECT_EQ(quick.tasks[0].metric, "acc_mutual_info");
  EXPECT_TRUE(quick.tasks[0].unconditional);
  EXPECT_EQ(quick.tasks.back().gen_task, GenTaskKind::humaneval);
  // The paper's suite reads the fetched data; without it the error says how to get it.
  TempDir empty;
  const char* before = std::getenv("DSALIGN_EVAL_DATA");
  const std::string saved = before ? before : "";
  setenv("DSALIGN_EVAL_DATA", empty.path.c_str(), 1);
  const std::string error = error_of([&] { read_eval_suite(recipes / "deepseek-llm.yaml"); });
  if (before) setenv("DSALIGN_EVAL_DATA", saved.c_str(), 1);
  else unsetenv("DSALIGN_EVAL_DATA");
  EXPECT_NE(error.find("deepseek-llm.yaml: tasks[0].data: " + (empty.path / "arc_easy.jsonl").string() + " is not a file"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("scripts/fetch_eval_data.sh"), std::string::npos) << error;
}

TEST(EvalSuite, BadSuitesNameFileAndKey) {
  TempDir tmp;
  tmp.write("mc.jsonl", "{\"query\": \"q\", \"choices\": [\"a\", \"b\"], \"gold\": 0}\n");
  auto error = [&](const std::string& task) {
    const fs::path file = tmp.write("suite.yaml", "suite: {name: s, data_dir: .}\ntasks:\n  - " + task + "\n");
    return error_of([&] { read_eval_suite(file); });
  };
  EXPECT_NE(error("{name: a, method: mcq, data: mc.jsonl}").find("suite.yaml: tasks[0].method"), std::string::npos)
      << error("{name: a, method: mcq, data: mc.jsonl}");
  EXPECT_NE(error("{name: a, data: mc.jsonl, metric: acc_mutual_info}").find("acc_mutual_info needs unconditional: true"),
            std::string::npos);
  EXPECT_NE(error("{name: a, data: missing.jsonl}").find("missing.jsonl is not a file"), std::string::npos);
  EXPECT_NE(error("{name: a, data: mc.jsonl, limt: 3}").find("limt"), std::string::npos);
  EXPECT_NE(error("{name: a, method: gen, task: gsm8k, data: mc.jsonl, metric: acc}").find("tasks[0].metric"),
            std::string::npos);
  EXPECT_NE(error_of([&] { read_eval_suite(tmp.path / "nope.yaml"); }).find("nope.yaml: no such suite file"), std::string::npos);
}

TEST(EvalSuite, ShotsPrefixTheFileFirstQuestions) {
  EvalModel m;
  Tokenizer tok = Tokenizer::load(m.dir);
  CausalLM model = load_model(m.dir, DecoderOptions{});
  m.tmp.write("mc.jsonl", "{\"query\": \"Q: 1 + 1?\\nA:\", \"choices\": [\"2\", \"3\"], \"gold\": 0}\n"
                          "{\"query\": \"Q: 2 + 2?\\nA:\", \"choices\": [\"4\", \"5\", \"6\"], \"gold\": 0}\n"
                          "{\"query\": \"Q: 3 + 3?\\nA:\", \"choices\": [\"5\", \"6\"], \"gold\": 1}\n");
  const fs::path file = m.tmp.write("suite.yaml", "suite: {data_dir: .}\ntasks:\n  - {name: sums, data: mc.jsonl, shots: 1, metric: acc_norm}\n");
  SuiteRunOptions run;
  run.progress = false;
  const std::vector<SuiteTaskResult> results = run_eval_suite(model, tok, read_eval_suite(file), run);
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].examples, 2);
  std::vector<McQuestion> expected = read_mc_questions(m.tmp.path / "mc.jsonl", 0);
  expected.erase(expected.begin());
  for (McQuestion& q : expected) q.query = "Q: 1 + 1?\nA: 2\n\n" + q.query;
  ScoringOptions scoring;
  scoring.progress = false;
  const McReport direct = run_multiple_choice(model, tok, expected, false, scoring);
  EXPECT_DOUBLE_EQ(results[0].value, direct.acc_norm.mean);
  EXPECT_DOUBLE_EQ(results[0].metrics.at("acc"), direct.acc.mean);
}

TEST(EvalSuite, RunsFromTheCommandLine) {
  EvalModel m;
  const fs::path& d = m.tmp.path;
  m.tmp.write("mc.jsonl", "{\"query\": \"Pick one:\", \"choices\": [\"yes\", \"no\"], \"gold\": 1}\n");
  m.tmp.write("docs.jsonl", "{\"text\": \"A short document.\"}\n");
  m.tmp.write("gsm8k.jsonl", "{\"prompt\": \"Question: 2 + 2?\\nAnswer:\", \"answer\": \"4\"}\n");
  m.tmp.write("suite.yaml", "suite: {name: mine, data_dir: ., batch_size: 2}\ntasks:\n"
                            "  - {name: choice, method: mc, data: mc.jsonl, unconditional: true, metric: acc_mutual_info}\n"
                            "  - {name: text, method: bpb, data: docs.jsonl}\n"
                            "  - {name: sums, method: gen, task: gsm8k, data: gsm8k.jsonl, max_new_tokens: 4}\n");
  const std::string command = std::string(DSALIGN_CLI) + " eval suite " + (d / "suite.yaml").string() + " --model " +
                              m.dir.string() + " --out " + (d / "suite.jsonl").string() + " > " + (d / "stdout").string() +
                              " 2> " + (d / "stderr").string();
  ASSERT_EQ(std::system(command.c_str()), 0) << read_text_file(d / "stderr");
  const std::string table = read_text_file(d / "stdout");
  for (const char* row : {"| choice | mc | 1 | acc_mutual_info |", "| text | bpb | 1 | bits_per_byte |", "| sums | gsm8k | 1 | exact_match |"})
    EXPECT_NE(table.find(row), std::string::npos) << table;
  const std::string report = read_text_file(d / "suite.jsonl");
  EXPECT_NE(report.find("\"task\":\"text\""), std::string::npos) << report;
  EXPECT_NE(report.find("\"word_perplexity\":"), std::string::npos) << report;
}

}  // namespace
}  // namespace dsalign
