// The SFT trainer end to end on a tiny deepseek-coder-shaped model (CPU): the run directory, a
// falling loss, bitwise-deterministic reruns, the final export, and refusing to clobber a run.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "eval/repetition.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/generate.h"
#include "sft/pipeline.h"
#include "sft/sft_trainer.h"
#include "util/error.h"
#include "util/files.h"
#include "process_util.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::TempDir;
using dsalign::testing::error_of;

namespace {

struct SftFixture {
  fs::path dir;
  SftFixture() {
    dir = fs::temp_directory_path() / ("dsalign_sft_" + std::to_string(::getpid()) + "_" +
                                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir);
    fs::create_directories(dir);
    SaveOptions save;
    save.dtype = torch::kFloat32;
    init_checkpoint(*model_preset("tiny-coder"), 0, dir / "model", save);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-coder" / f, dir / "model" / f);
    std::ofstream data(dir / "data.jsonl");
    const char* names[] = {"Alice", "Bob", "Carol", "Dan"};
    for (int i = 0; i < 240; ++i)
      data << R"({"prompt": "Greet )" << names[i % 4] << R"(.", "response": "Hello, )" << names[i % 4] << R"(!"})" << "\n";
    std::ofstream(dir / "recipe.yaml") << "run: {name: t, output_dir: run}\nmodel: {path: model}\n"
                                          "data: {sources: [{path: data.jsonl}], max_seq_len: 96, validation_fraction: 0.1,"
                                          " cache_dir: cache}\n"
                                          "train: {micro_batch_size: 4, global_batch_size: 8, lr: 0.003, warmup_steps: 2,"
                                          " schedule: constant, log_every: 1}\n";
  }
  ~SftFixture() { fs::remove_all(dir); }

  std::vector<double> run(const std::vector<std::string>& overrides) {
    RecipeFile file = load_recipe(dir / "recipe.yaml", overrides);
    run_sft(parse_sft_recipe(file), file);
    std::vector<double> losses;
    std::ifstream metrics(dir / "run" / "metrics.jsonl");
    for (std::string line; std::getline(metrics, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) losses.push_back(j["loss"].get<double>());
    }
    return losses;
  }
};

}  // namespace

TEST(Sft, TrainsExportsAndIsDeterministic) {
  SftFixture f;
  std::vector<double> first = f.run({});
  ASSERT_GE(first.size(), 20u);
  EXPECT_LT(first.back(), 0.5 * first.front()) << "loss did not fall: " << first.front() << " -> " << first.back();
  // config.yaml: the resolved recipe, paths absolute, and it parses back to the same recipe.
  RecipeFile recorded = load_recipe(f.dir / "run" / "config.yaml", {});
  EXPECT_EQ(recorded.root["model"]["path"].as<std::string>(), (f.dir / "model").string());
  EXPECT_EQ(parse_sft_recipe(recorded).data.sources[0].path, (f.dir / "data.jsonl").string());

  // final/ is a Hugging Face checkpoint with the tokenizer; EOS is deepseek-coder's <|EOT|>.
  CausalLM exported = load_model(f.dir / "run" / "final", DecoderOptions{});
  EXPECT_TRUE(fs::exists(f.dir / "run" / "final" / "tokenizer.json"));
  auto gen = nlohmann::json::parse(read_text_file(f.dir / "run" / "final" / "generation_config.json"));
  EXPECT_EQ(gen["eos_token_id"].get<int>(), 32021);

  // The same recipe again (overwrite) gives the same loss curve, bit for bit, on CPU.
  std::vector<double> second = f.run({"run.overwrite=true"});
  EXPECT_EQ(first, second);
}

// monitor.eval: the suite at the start, every N steps and at the end, into metrics.jsonl as
// eval/<task>/<metric> and eval/step_<N>.jsonl; a missing suite stops the run before training.
TEST(Sft, EvalMonitorLogsTheSuite) {
  SftFixture f;
  std::ofstream(f.dir / "mc.jsonl") << R"({"query": "Greet Bob.", "choices": ["Hello, Bob!", "Bye."], "gold": 0})" << "\n"
                                    << R"({"query": "Greet Dan.", "choices": ["No.", "Hello, Dan!"], "gold": 1})" << "\n";
  std::ofstream(f.dir / "gsm8k.jsonl") << R"({"prompt": "Question: 1 + 1?\nAnswer:", "answer": "2"})" << "\n";
  std::ofstream(f.dir / "suite.yaml") << "suite: {name: mine, data_dir: .}\ntasks:\n"
                                         "  - {name: greet, method: mc, data: mc.jsonl}\n"
                                         "  - {name: sums, method: gen, task: gsm8k, data: gsm8k.jsonl, max_new_tokens: 4}\n";
  f.run({"train.max_steps=6", "monitor.eval.suite=suite.yaml", "monitor.eval.every_steps=3"});
  std::vector<int64_t> steps;
  std::ifstream metrics(f.dir / "run" / "metrics.jsonl");
  for (std::string line; std::getline(metrics, line);) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("eval/greet/acc")) continue;
    steps.push_back(j["step"]);
    EXPECT_TRUE(j.contains("eval/greet/acc_norm") && j.contains("eval/sums/exact_match") && j.contains("eval_seconds")) << line;
  }
  EXPECT_EQ(steps, (std::vector<int64_t>{0, 3, 6}));
  EXPECT_NE(read_text_file(f.dir / "run" / "eval" / "step_3.jsonl").find("\"task\":\"sums\""), std::string::npos);
  RecipeFile recorded = load_recipe(f.dir / "run" / "config.yaml", {});
  EXPECT_EQ(recorded.root["monitor"]["eval"]["suite"].as<std::string>(), (f.dir / "suite.yaml").string());
  const std::string error = error_of([&] { f.run({"run.overwrite=true", "monitor.eval.suite=missing.yaml"}); });
  EXPECT_NE(error.find("monitor.eval.suite: " + (f.dir / "missing.yaml").string() + ": no such suite file"), std::string::npos)
      << error;
}

TEST(Sft, RefusesAnExistingRunAndBadRecipes) {
  SftFixture f;
  f.run({"train.max_steps=2"});
  try {
    f.run({"train.max_steps=2"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already holds a run"), std::string::npos) << e.what();
  }
  auto error_of = [&](const std::vector<std::string>& overrides) {
    try {
      RecipeFile file = load_recipe(f.dir / "recipe.yaml", overrides);
      parse_sft_recipe(file);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error_of({"train.lrr=1"}).find("train.lrr: unknown key (did you mean 'train.lr'?)"), std::string::npos);
  EXPECT_NE(error_of({"model.dtype=int8"}).find("model.dtype: 'int8' is not one of: fp32, bf16"), std::string::npos);
  EXPECT_NE(error_of({"trian.lr=1"}).find("trian: unknown key (did you mean 'train'?)"), std::string::npos);
}

// A CPU run started as its own process, killed with SIGKILL mid-run, then resumed with
// --resume: the same loss curve and the same final weights as an uninterrupted run.
TEST(Sft, ResumeAfterSigkillMatchesUninterruptedRun) {
  SftFixture f;
  const std::string cli = DSALIGN_CLI;
  const std::string recipe = (f.dir / "recipe.yaml").string();
  const std::string common = " train.checkpoint_every_steps=2 data.epochs=2";
  ASSERT_EQ(std::system((cli + " sft " + recipe + common + " run.output_dir=whole > /dev/null 2>&1").c_str()), 0);

  std::string pid_file = (f.dir / "pid").string();
  ASSERT_EQ(std::system((cli + " sft " + recipe + common + " > /dev/null 2>&1 & echo $! > " + pid_file).c_str()), 0);
  pid_t pid = std::stoi(read_text_file(pid_file));
  fs::path metrics = f.dir / "run" / "metrics.jsonl";
  bool reached = false;
  for (int i = 0; i < 600 && !reached; ++i) {  // at most 60 s
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    reached = fs::exists(metrics) && read_text_file(metrics).find("\"step\":7,") != std::string::npos;
  }
  ASSERT_TRUE(reached) << "the run never reached step 7";
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  ASSERT_FALSE(fs::exists(f.dir / "run" / "final")) << "killed too late";
  ASSERT_EQ(std::system((cli + " sft " + recipe + common + " --resume > /dev/null 2>&1").c_str()), 0);

  auto curve = [](const fs::path& path) {
    std::vector<std::pair<int64_t, double>> out;
    std::istringstream in(read_text_file(path));
    for (std::string line; std::getline(in, line);) {
      auto j = nlohmann::json::parse(line);
      if (j.contains("loss")) out.emplace_back(j["step"].get<int64_t>(), j["loss"].get<double>());
    }
    return out;
  };
  auto whole = curve(f.dir / "whole" / "metrics.jsonl");
  ASSERT_GT(whole.size(), 10u);
  EXPECT_EQ(curve(metrics), whole);
  EXPECT_EQ(read_text_file(f.dir / "run" / "final" / "model.safetensors"),
            read_text_file(f.dir / "whole" / "final" / "model.safetensors"));
}

using dsalign::testing::start_command;
using dsalign::testing::temporaries;
using dsalign::testing::wait_for_exit;

// SIGINT during sft: the run stops before its next step within seconds, with one line naming the
// newest complete checkpoint; that checkpoint is intact (it resumes), and nothing temporary is left.
TEST(Sft, SigintStopsBeforeTheNextStepKeepingTheNewestCheckpoint) {
  SftFixture f;
  const std::string cli = DSALIGN_CLI;
  const std::string recipe = (f.dir / "recipe.yaml").string();
  const std::string common = " train.checkpoint_every_steps=2 data.epochs=3";
  const std::string log = (f.dir / "log").string();
  const pid_t pid = start_command("exec " + cli + " sft " + recipe + common + " > " + log + " 2>&1");
  const fs::path metrics = f.dir / "run" / "metrics.jsonl";
  bool reached = false;
  for (int i = 0; i < 600 && !reached; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    reached = fs::exists(metrics) && read_text_file(metrics).find("\"step\":5,") != std::string::npos;
  }
  ASSERT_TRUE(reached) << "the run never reached step 5";
  ::kill(pid, SIGINT);
  ASSERT_EQ(wait_for_exit(pid, 10), 1) << "not stopped with exit code 1 within 10 s of SIGINT\n" << read_text_file(log);
  const std::string err = read_text_file(log);
  const size_t at = err.find("dsalign sft: error: interrupted before step ");
  ASSERT_NE(at, std::string::npos) << err;
  EXPECT_NE(err.find("the newest complete checkpoint is ", at), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(f.dir / "run" / "final"));
  EXPECT_EQ(temporaries(f.dir / "run"), std::vector<std::string>{});
  ASSERT_EQ(std::system((cli + " sft " + recipe + common + " --resume > " + log + " 2>&1").c_str()), 0) << read_text_file(log);
  EXPECT_TRUE(fs::exists(f.dir / "run" / "final" / "model.safetensors"));
}

// Every shipped SFT recipe parses (keys and types valid) and states the paper's settings.
TEST(Sft, ShippedRecipesParse) {
  fs::path recipes = fs::path(DSALIGN_SOURCE_DIR) / "recipes";
  int parsed = 0;
  for (const auto& entry : fs::recursive_directory_iterator(recipes)) {
    const std::string name = entry.path().filename().string();
    if (entry.path().extension() != ".yaml" || name.find("sft") == std::string::npos) continue;
    SCOPED_TRACE(entry.path().string());
    std::string text = read_text_file(entry.path());
    EXPECT_EQ(text.rfind("# dsalign sft " , 0), 0u) << "a recipe starts with the command that runs it";
    SftRecipe r = parse_sft_recipe(load_recipe(entry.path(), {}));
    EXPECT_DOUBLE_EQ(r.train.beta2, 0.95);
    EXPECT_DOUBLE_EQ(r.train.weight_decay, 0.1);
    EXPECT_DOUBLE_EQ(r.train.grad_clip, 1.0);
    ++parsed;
  }
  EXPECT_GE(parsed, 3);
  SftRecipe stage2 = parse_sft_recipe(load_recipe(recipes / "deepseek-llm-7b" / "sft_stage2.yaml", {}));
  EXPECT_EQ(stage2.data.exclude_domains, (std::vector<std::string>{"math", "code"}));
  SftRecipe big = parse_sft_recipe(load_recipe(recipes / "deepseek-llm-67b" / "sft.yaml", {}));
  EXPECT_EQ(big.data.epochs, 2);
  EXPECT_DOUBLE_EQ(big.train.schedule.lr, 5e-6);
}

// A non-finite loss stops the run with a clear message, keeping the last good checkpoint; with
// on_nonfinite: skip such steps are skipped and counted.
TEST(Sft, NonFiniteLossStopsOrSkips) {
  SftFixture f;
  try {
    f.run({"train.lr=1.0e+30", "train.checkpoint_every_steps=1", "train.warmup_steps=0", "train.grad_clip=0"});
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(fs::exists(f.dir / "run" / "checkpoints"));
  for (const auto& entry : fs::directory_iterator(f.dir / "run" / "checkpoints"))
    EXPECT_TRUE(fs::exists(entry.path() / "state.json")) << "a checkpoint left half-written";
  EXPECT_FALSE(fs::exists(f.dir / "run" / "final"));

  std::vector<double> losses = f.run({"run.overwrite=true", "train.lr=1.0e+30", "train.warmup_steps=0", "train.grad_clip=0",
                                      "train.on_nonfinite=skip", "train.max_steps=6"});
  auto last = nlohmann::json::parse([&] {
    std::istringstream in(read_text_file(f.dir / "run" / "metrics.jsonl"));
    std::string line, final_line;
    while (std::getline(in, line))
      if (line.find("skipped_steps") != std::string::npos) final_line = line;
    return final_line.empty() ? std::string("{}") : final_line;
  }());
  EXPECT_GT(last.value("skipped_steps", 0), 0);
}

// The repetition monitor end to end, on the quickstart's recipes and data, shortened and in the
// deepseek-coder chat format: a tiny model given a little plain-text "pretraining" answers
// (almost) every held-out chat prompt by looping; after a short SFT that teaches it to answer
// and end its turn, (almost) none loops.
TEST(Sft, RepetitionRatioFallsAfterTraining) {
  TempDir tmp;
  const fs::path quickstart = fs::path(DSALIGN_SOURCE_DIR) / "recipes" / "quickstart";
  SaveOptions save;
  save.dtype = torch::kFloat32;
  init_checkpoint(*model_preset("tiny-coder"), 0, tmp.path / "init", save);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-coder" / f, tmp.path / "init" / f);
  RecipeFile pretrain = load_recipe(quickstart / "pretrain.yaml",
                                    {"model.path=" + (tmp.path / "init").string(), "run.output_dir=" + (tmp.path / "pretrain").string(),
                                     "train.max_steps=30"});
  run_sft(parse_sft_recipe(pretrain), pretrain);
  RecipeFile sft = load_recipe(quickstart / "sft_stage1.yaml",
                               {"model.path=" + (tmp.path / "pretrain" / "final").string(),
                                "run.output_dir=" + (tmp.path / "sft").string(), "train.max_steps=80",
                                "data.chat_template=deepseek-coder", "monitor.eval.limit=8",
                                "monitor.repetition.prompts=" + (quickstart / "data" / "heldout.jsonl").string(),
                                "monitor.repetition.at_start=true", "monitor.repetition.max_prompts=16",
                                "monitor.repetition.max_new_tokens=32"});
  SftOutcome outcome = run_sft(parse_sft_recipe(sft), sft);

  std::vector<nlohmann::json> measured;
  std::istringstream in(read_text_file(tmp.path / "sft" / "metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("repetition_ratio")) measured.push_back(j);
  }
  ASSERT_EQ(measured.size(), 2u);
  EXPECT_EQ(measured[0]["step"].get<int64_t>(), 0);
  EXPECT_GE(measured[0]["repetition_ratio"].get<double>(), 0.75) << measured[0].dump();
  EXPECT_LE(measured[1]["repetition_ratio"].get<double>(), 0.25) << measured[1].dump();
  EXPECT_EQ(measured[1]["repetition_prompts"].get<int64_t>(), 16);
  EXPECT_DOUBLE_EQ(outcome.repetition_ratio, measured[1]["repetition_ratio"].get<double>());

  // The report: a summary line, then the repetitive cases with their repeating unit.
  std::istringstream report(read_text_file(measured[0]["repetition_report"].get<std::string>()));
  std::string line;
  ASSERT_TRUE(std::getline(report, line));
  auto summary = nlohmann::json::parse(line)["summary"];
  EXPECT_EQ(summary["prompts"].get<int64_t>(), 16);
  EXPECT_EQ(summary["repetitive"], measured[0]["repetition_repetitive"]);
  ASSERT_TRUE(std::getline(report, line));
  auto first_case = nlohmann::json::parse(line);
  EXPECT_FALSE(first_case["unit_tokens"].empty());
  EXPECT_FALSE(first_case["prompt"].get<std::string>().empty());
  EXPECT_GE(first_case["repeats"].get<double>(), 3.0);

  // Trained on TRL's span, "content\n<|EOT|>\n", the exported chat model still stops at <|EOT|>:
  // generation_config.json names it as EOS, a response ends there (terminated, without it), and
  // the newline the model learned to put after it is never generated.
  const fs::path final_dir = tmp.path / "sft" / "final";
  Tokenizer tokenizer = Tokenizer::load(final_dir);
  const int32_t eot = *tokenizer.token_to_id("<|EOT|>");
  auto generation_config = nlohmann::json::parse(read_text_file(final_dir / "generation_config.json"));
  EXPECT_EQ(generation_config["eos_token_id"].get<int32_t>(), eot);
  CausalLM chat = load_model(final_dir, DecoderOptions{});
  std::vector<std::string> prompts;
  for (const auto& p : read_eval_prompts(quickstart / "data" / "heldout.jsonl", 8)) prompts.push_back(p.prompt);
  auto prompt_ids = chat_prompt_ids(tokenizer, ChatFormat::deepseek_coder, prompts);
  auto responses = generate_greedy(chat, prompt_ids, chat_generation_options(tokenizer, ChatFormat::deepseek_coder, 32, 8));
  int terminated = 0;
  for (size_t i = 0; i < responses.size(); ++i) {
    const Generation& g = responses[i];
    EXPECT_EQ(std::count(g.tokens.begin(), g.tokens.end(), eot), 0) << "response " << i;
    if (!g.terminated) continue;
    ++terminated;
    EXPECT_FALSE(find_repetition(g.tokens, true, RepetitionRule{}).has_value());
    // What follows <|EOT|> in training is "\n": the model predicts it, generation never reaches it.
    std::vector<int32_t> ids = prompt_ids[i];
    ids.insert(ids.end(), g.tokens.begin(), g.tokens.end());
    ids.push_back(eot);
    torch::NoGradGuard no_grad;
    DecoderInput input;
    input.input_ids = torch::tensor(std::vector<int64_t>(ids.begin(), ids.end())).unsqueeze(0);
    torch::Tensor logits = chat->forward(input);
    EXPECT_EQ(tokenizer.decode({static_cast<int32_t>(logits[0][-1].argmax().item<int64_t>())}), "\n") << "response " << i;
  }
  EXPECT_GE(terminated, 6) << "most answers end their turn";

  // The base model's own 512-token answers (issue 13's real generations): those that do not end
  // their turn loop, and every one is counted (how many by the loop rule alone is printed).
  Tokenizer base_tokenizer = Tokenizer::load(tmp.path / "pretrain" / "final");
  CausalLM base = load_model(tmp.path / "pretrain" / "final", DecoderOptions{});
  auto base_answers = generate_greedy(base, chat_prompt_ids(base_tokenizer, ChatFormat::deepseek_coder, prompts),
                                      chat_generation_options(base_tokenizer, ChatFormat::deepseek_coder, 512, 8));
  int unterminated = 0, caught = 0, loops = 0;
  for (const Generation& g : base_answers) {
    if (g.terminated) continue;
    ++unterminated;
    auto r = find_repetition(g.tokens, false, RepetitionRule{});
    if (!r) ADD_FAILURE() << "a base-model answer that runs to the limit is not counted: " << base_tokenizer.decode(g.tokens);
    caught += r.has_value();
    loops += r && r->kind == Repetition::Kind::loop;
  }
  EXPECT_GE(unterminated, 6) << "the base model answers by looping";
  std::cout << "quickstart base model, 8 held-out prompts, 512 tokens: " << unterminated << " run to the limit, " << caught
            << " counted repetitive (" << loops << " by the loop rule only)\n";
}

// A recipe named by a relative path (as the README's `dsalign sft recipes/quickstart/...` does)
// finds its data relative to its own folder, once: the recipe parser resolves the sources and the
// data preparation must not join the folder again ("recipes/quickstart/recipes/quickstart/...").
TEST(Sft, RelativeRecipePathFindsItsData) {
  SftFixture f;
  const std::string command = "cd " + f.dir.parent_path().string() + " && " + DSALIGN_CLI + " sft " +
                              f.dir.filename().string() + "/recipe.yaml train.max_steps=1 > /dev/null 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
  EXPECT_TRUE(fs::exists(f.dir / "run" / "final" / "config.json"));
}

// --resume names a directory that is not a complete checkpoint: a one-line error, no training.
TEST(Sft, ResumeFromAnIncompleteCheckpointIsAnError) {
  SftFixture f;
  f.run({"train.max_steps=2"});
  fs::create_directories(f.dir / "run" / "checkpoints" / "step_9");
  RecipeFile file = load_recipe(f.dir / "recipe.yaml", {"train.max_steps=2"});  // resuming trains nothing more
  try {
    run_sft(parse_sft_recipe(file), file, (f.dir / "run" / "checkpoints" / "step_9").string());
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not a complete dsalign training checkpoint (no state.json)"), std::string::npos)
        << e.what();
  }
  // `latest` skips the incomplete directory and takes step_2.
  run_sft(parse_sft_recipe(file), file, "latest");
}

// A disk that fills while a checkpoint is written (here: a file-size limit, so writes fail with
// EFBIG): the run stops with a one-line error naming the checkpoint, the previous checkpoint
// stays intact, and no half-written step directory is left behind.
TEST(Sft, FullDiskWhileCheckpointingKeepsThePreviousCheckpoint) {
  SftFixture f;
  const std::string cli = DSALIGN_CLI;
  const std::string recipe = (f.dir / "recipe.yaml").string();
  ASSERT_EQ(std::system((cli + " sft " + recipe + " train.max_steps=2 > /dev/null 2>&1").c_str()), 0);
  fs::path good = f.dir / "run" / "checkpoints" / "step_2";
  ASSERT_TRUE(fs::exists(good / "state.json"));
  const std::string before = read_text_file(good / "model.safetensors");
  // 64 KiB per file: metrics and state fit, the weights do not.
  std::string command = "sh -c \"trap '' XFSZ; ulimit -f 64; exec " + cli + " sft " + recipe +
                        " train.max_steps=4 train.checkpoint_every_steps=2 --resume\" > " + (f.dir / "err").string() +
                        " 2>&1";
  EXPECT_NE(std::system(command.c_str()), 0);
  std::string err = read_text_file(f.dir / "err");
  EXPECT_NE(err.find("checkpoint"), std::string::npos) << err;
  EXPECT_NE(err.find("step_4"), std::string::npos) << err;
  EXPECT_EQ(read_text_file(good / "model.safetensors"), before);
  EXPECT_TRUE(fs::exists(good / "state.json"));
  EXPECT_FALSE(fs::exists(f.dir / "run" / "checkpoints" / "step_4"));
  for (const auto& entry : fs::directory_iterator(f.dir / "run" / "checkpoints"))
    EXPECT_EQ(entry.path().filename().string().rfind("step_", 0), 0u) << "left behind: " << entry.path();
  // The run resumes from step 2 once there is room again.
  ASSERT_EQ(std::system((cli + " sft " + recipe + " train.max_steps=4 --resume > /dev/null 2>&1").c_str()), 0);
  EXPECT_TRUE(fs::exists(f.dir / "run" / "checkpoints" / "step_4" / "state.json"));
}

// Pipelines: ${stage.output} interpolation and its errors, the shipped pipelines, and a tiny
// init -> sft -> export run whose rerun skips every finished stage.
TEST(Pipeline, InterpolatesAndNamesBadStages) {
  TempDir tmp;
  tmp.write("s.yaml", "run: {output_dir: x}\nmodel: {path: m}\ndata: {sources: [{path: d.jsonl}]}\ntrain: {}\n");
  auto parse = [&](const std::string& stages) {
    return parse_pipeline(load_recipe(tmp.write("p.yaml", "run: {name: p, output_dir: out}\nstages:\n" + stages), {}));
  };
  Pipeline p = parse("  - {name: a, init: {preset: tiny, tokenizer: tok}}\n"
                     "  - {name: b, sft: s.yaml, overrides: {model.path: '${a.output}', train.lr: 0.5}}\n"
                     "  - {name: c, export: {from: '${b.output}'}}\n");
  ASSERT_EQ(p.stages.size(), 3u);
  EXPECT_EQ(p.stages[1].overrides[0], "model.path=" + (tmp.path / "out" / "a").string());
  EXPECT_EQ(p.stages[1].overrides[1], "train.lr=0.5");
  EXPECT_EQ(p.stages[2].from, tmp.path / "out" / "b" / "final");
  auto error = [&](const std::string& stages) { return error_of([&] { parse(stages); }); };
  EXPECT_NE(error("  - {name: b, sft: s.yaml, overrides: {model.path: '${a.output}'}}\n").find("'${a.output}' names no earlier stage"),
            std::string::npos);
  EXPECT_NE(error("  - {name: a, init: {preset: tiny, tokenizer: t}}\n  - {name: a, sft: s.yaml}\n").find("used by an earlier stage"),
            std::string::npos);
  EXPECT_NE(error("  - {name: a, sft: s.yaml, export: {from: x}}\n").find("exactly one of init, sft, dpo or export"), std::string::npos);
  // An init stage's shape: a preset or a config.json, exactly one of them.
  EXPECT_NE(error("  - {name: a, init: {preset: tiny, config: c.json, tokenizer: t}}\n").find("exactly one of preset"),
            std::string::npos);
  EXPECT_NE(error("  - {name: a, init: {tokenizer: t}}\n").find("exactly one of preset"), std::string::npos);
  EXPECT_NE(error("  - {name: a, init: {preset: huge, tokenizer: t}}\n").find("'huge' is not a preset (deepseek-llm-7b, "), std::string::npos);
  EXPECT_NE(error("  - {name: a, init: {config: missing.json, tokenizer: t}}\n").find("init.config"), std::string::npos)
      << error("  - {name: a, init: {config: missing.json, tokenizer: t}}\n");
  EXPECT_NE(error("  - {name: a, sft: s.yaml, overides: {}}\n").find("did you mean 'stages[0].overrides'"), std::string::npos);
  EXPECT_NE(error("  - {name: a, sft: s.yaml, overrides: {model.path: '${a.outptu}'}}\n").find("must be ${<stage>.output}"),
            std::string::npos);
  // The shipped pipelines parse.
  for (const char* shipped : {"quickstart/pipeline.yaml", "deepseek-llm-7b/chat.yaml"}) {
    fs::path file = fs::path(DSALIGN_SOURCE_DIR) / "recipes" / shipped;
    EXPECT_EQ(read_text_file(file).rfind("# dsalign run ", 0), 0u) << shipped;
    EXPECT_GE(parse_pipeline(load_recipe(file, {})).stages.size(), 3u) << shipped;
  }
}

TEST(Pipeline, RunsStagesAndSkipsFinishedOnes) {
  SftFixture f;
  std::ofstream(f.dir / "pipeline.yaml") << "run: {name: tiny, output_dir: pipe}\nstages:\n"
      "  - {name: base, init: {preset: tiny-coder, tokenizer: " << (fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-coder").string() << "}}\n"
      "  - {name: sft, sft: recipe.yaml, overrides: {model.path: '${base.output}', train.max_steps: 2}}\n"
      "  - {name: chat, export: {from: '${sft.output}', dtype: bf16}}\n";
  Pipeline p = parse_pipeline(load_recipe(f.dir / "pipeline.yaml", {}));
  fs::path result = run_pipeline(p, {});
  EXPECT_EQ(result, f.dir / "pipe" / "chat");
  EXPECT_TRUE(fs::exists(result / "model.safetensors"));
  auto recorded = load_recipe(f.dir / "pipe" / "sft" / "config.yaml", {});
  EXPECT_EQ(recorded.root["model"]["path"].as<std::string>(), (f.dir / "pipe" / "base").string());
  auto stamp = fs::last_write_time(f.dir / "pipe" / "sft" / "final" / "model.safetensors");
  run_pipeline(p, {});  // everything is done: nothing reruns
  EXPECT_EQ(fs::last_write_time(f.dir / "pipe" / "sft" / "final" / "model.safetensors"), stamp);
  PipelineOptions from_sft;
  from_sft.from_stage = "sft";
  run_pipeline(p, from_sft);
  EXPECT_NE(fs::last_write_time(f.dir / "pipe" / "sft" / "final" / "model.safetensors"), stamp);
  EXPECT_NE(error_of([&] { from_sft.from_stage = "nope"; run_pipeline(p, from_sft); }).find("--from nope: no such stage"),
            std::string::npos);

  // `dsalign export <run>`: the run's newest checkpoint (fp32 master weights) -> a chat checkpoint.
  fs::path out = f.dir / "exported";
  ASSERT_EQ(std::system((std::string(DSALIGN_CLI) + " export " + (f.dir / "pipe" / "sft").string() + " " + out.string() +
                         " --dtype fp32 > /dev/null 2>&1").c_str()), 0);
  auto tokenizer_config = nlohmann::json::parse(read_text_file(out / "tokenizer_config.json"));
  EXPECT_EQ(recognise_chat_template(tokenizer_config["chat_template"].get<std::string>()), ChatFormat::deepseek_coder);
  EXPECT_EQ(nlohmann::json::parse(read_text_file(out / "generation_config.json"))["eos_token_id"].get<int>(), 32021);
  CausalLM exported = load_model(out, DecoderOptions{});
  CausalLM checkpoint = load_model(f.dir / "pipe" / "sft" / "checkpoints" / "step_2", DecoderOptions{});
  EXPECT_TRUE(torch::equal(exported->lm_head_weight(), checkpoint->lm_head_weight()));
  // An existing directory is refused without --overwrite.
  EXPECT_NE(std::system((std::string(DSALIGN_CLI) + " export " + (f.dir / "pipe" / "sft").string() + " " + out.string() +
                         " > /dev/null 2>&1").c_str()), 0);
}

// `dsalign export` bad input: a missing source, a run with nothing to export, a bad size.
TEST(Export, BadInputIsAOneLineError) {
  TempDir tmp;
  ExportOptions o;
  EXPECT_NE(error_of([&] { export_model(tmp.path / "nope", tmp.path / "out", "auto", o); }).find("nope: no such directory"),
            std::string::npos);
  tmp.write("config.yaml", "run: {}\n");
  EXPECT_NE(error_of([&] { export_model(tmp.path, tmp.path / "out", "auto", o); })
                .find("a run directory with no complete checkpoint and no final/ to export"),
            std::string::npos);
  // A damaged state.json beside the weights (it names the chat format) is one line naming it.
  CausalLM tiny(*model_preset("tiny"), DecoderOptions{});
  save_checkpoint(tiny, tmp.path / "ckpt", SaveOptions{});
  for (const std::string state : {"{bad", "{\"chat_format\": 5}"}) {
    tmp.write("ckpt/state.json", state);
    const std::string e = error_of([&] { export_model(tmp.path / "ckpt", tmp.path / "out", "auto", o); });
    EXPECT_NE(e.find("ckpt/state.json: "), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  }
  EXPECT_EQ(parse_byte_size("5GB"), 5000000000);
  EXPECT_EQ(parse_byte_size("2GiB"), int64_t{2} << 30);
  EXPECT_NE(error_of([&] { parse_byte_size("5 parsecs"); }).find("is not a size"), std::string::npos);
  EXPECT_NE(error_of([&] { parse_byte_size("-1MB"); }).find("is not a size"), std::string::npos);
}
