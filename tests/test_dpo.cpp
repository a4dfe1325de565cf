// The DPO trainer end to end on a tiny model (live and precomputed reference, resume, metrics),
// its recipe's validation, bad preference data, and the shipped DPO recipes. Parity of the losses
// with TRL is in test_dpo_parity.cpp.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "data/preference_data.h"
#include "dpo/dpo_trainer.h"
#include "model/checkpoint.h"
#include "model/weight_file.h"
#include "sft/pipeline.h"
#include "util/files.h"
#include "process_util.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::error_of;

namespace {

fs::path source_dir() { return fs::path(DSALIGN_SOURCE_DIR); }

// A tiny deepseek-coder-shaped model, 96 quickstart preference pairs and a recipe in a temp dir.
struct DpoFixture {
  dsalign::testing::TempDir tmp;
  DpoFixture() {
    SaveOptions save;
    save.dtype = torch::kFloat32;
    init_checkpoint(*model_preset("tiny-coder"), 0, tmp.path / "model", save);
    for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
      fs::copy_file(source_dir() / "assets/tokenizers/deepseek-coder" / f, tmp.path / "model" / f);
    std::ifstream in(source_dir() / "recipes/quickstart/data/preference.jsonl");
    std::ofstream out(tmp.path / "pairs.jsonl");
    std::string line;
    for (int i = 0; i < 96 && std::getline(in, line); ++i) out << line << "\n";
    tmp.write("recipe.yaml",
              "run: {name: t, output_dir: run}\nmodel: {path: model}\n"
              "data: {sources: [{path: pairs.jsonl}], max_seq_len: 160, validation_fraction: 0.25}\n"
              "train: {micro_batch_size: 4, global_batch_size: 8, lr: 0.002, schedule: constant, log_every: 1,"
              " weight_decay: 0.0}\n"
              "dpo: {loss: sigmoid, beta: 0.1, reference: {cache_dir: refcache}}\n");
  }
  DpoOutcome run(std::vector<std::string> overrides, const std::string& resume = "") {
    overrides.push_back("run.overwrite=true");
    RecipeFile file = load_recipe(tmp.path / "recipe.yaml", overrides);
    return run_dpo(parse_dpo_recipe(file), file, resume);
  }
  std::vector<nlohmann::json> metrics(const std::string& run = "run") const {
    std::vector<nlohmann::json> rows;
    std::ifstream in(tmp.path / run / "metrics.jsonl");
    for (std::string line; std::getline(in, line);) rows.push_back(nlohmann::json::parse(line));
    return rows;
  }
};

std::vector<double> losses(const std::vector<nlohmann::json>& rows) {
  std::vector<double> out;
  for (const auto& r : rows)
    if (r.contains("loss") && r.contains("lr")) out.push_back(r["loss"]);
  return out;
}

}  // namespace

// Live reference: the metrics TRL logs, per step and on held-out pairs; the reward accuracy on
// held-out pairs rises from 0 (policy = reference); final/ is a loadable chat checkpoint.
TEST(Dpo, TrainsWithLiveReferenceAndLogsTrlMetrics) {
  DpoFixture f;
  DpoOutcome o = f.run({"run.output_dir=run", "data.epochs=3", "train.val_every=9"});
  EXPECT_EQ(o.steps, 27);  // 72 training pairs, 8 per step, 3 epochs
  EXPECT_TRUE(o.reference_resident);
  EXPECT_GT(o.reference_bytes, 0);
  auto rows = f.metrics();
  ASSERT_FALSE(rows.empty());
  EXPECT_EQ(rows[0]["reference_mode"], "live");
  const nlohmann::json* step = nullptr;
  for (const auto& r : rows)
    if (r.contains("lr")) step = &r;
  ASSERT_TRUE(step);
  for (const char* key : {"loss", "rewards/chosen", "rewards/rejected", "rewards/accuracy", "rewards/margin", "logps/chosen",
                          "logps/rejected", "grad_norm", "tokens_per_s", "peak_memory_bytes", "lr"})
    EXPECT_TRUE(step->contains(key)) << key;
  std::vector<double> accuracy;
  for (const auto& r : rows)
    if (r.contains("val_rewards/accuracy")) accuracy.push_back(r["val_rewards/accuracy"]);
  ASSERT_GE(accuracy.size(), 3u);  // before training, every 9 steps, at the end
  EXPECT_EQ(accuracy.front(), 0.0);
  EXPECT_GE(accuracy.back(), 0.7);
  EXPECT_DOUBLE_EQ(o.validation_accuracy, accuracy.back());
  CausalLM exported = load_model(o.final_dir, DecoderOptions{});
  EXPECT_EQ(exported->config.vocab_size, model_preset("tiny-coder")->vocab_size);
}

// monitor.eval in a DPO recipe: the suite at the end only (at_start: false).
TEST(Dpo, EvalMonitorLogsTheSuite) {
  DpoFixture f;
  f.tmp.write("mc.jsonl", "{\"query\": \"Greet Bob.\", \"choices\": [\"Hello, Bob!\", \"Bye.\"], \"gold\": 0}\n");
  f.tmp.write("suite.yaml", "suite: {data_dir: .}\ntasks:\n  - {name: greet, method: mc, data: mc.jsonl}\n");
  f.run({"train.max_steps=2", "monitor.eval.suite=suite.yaml", "monitor.eval.at_start=false"});
  std::vector<int64_t> steps;
  for (const auto& r : f.metrics())
    if (r.contains("eval/greet/acc")) steps.push_back(r["step"]);
  EXPECT_EQ(steps, std::vector<int64_t>{2});
  EXPECT_TRUE(fs::exists(f.tmp.path / "run" / "eval" / "step_2.jsonl"));
}

// Precomputed reference: the same losses as live, the reference not resident, and the cache
// written once and then reused.
TEST(Dpo, PrecomputedReferenceMatchesLiveAndIsCached) {
  DpoFixture f;
  f.run({"run.output_dir=live", "train.max_steps=3"});
  DpoOutcome p = f.run({"run.output_dir=pre", "train.max_steps=3", "dpo.reference.mode=precomputed"});
  EXPECT_FALSE(p.reference_resident);
  auto live = losses(f.metrics("live")), pre = losses(f.metrics("pre"));
  ASSERT_EQ(live.size(), 3u);
  ASSERT_EQ(pre.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(pre[i], live[i], 1e-5) << "step " << i + 1;
  auto entries = [&] {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(f.tmp.path / "refcache")) n += e.path().extension() == ".safetensors";
    return n;
  };
  EXPECT_EQ(entries(), 1u);
  f.run({"run.output_dir=pre2", "train.max_steps=1", "dpo.reference.mode=precomputed"});
  EXPECT_EQ(entries(), 1u) << "the second run reuses the cache";
  f.run({"run.output_dir=pre3", "train.max_steps=1", "dpo.reference.mode=precomputed", "data.validation_fraction=0.5"});
  EXPECT_EQ(entries(), 2u) << "other pairs, another key";
}

// SimPO needs no reference; RPO, IPO and hinge train too (finite losses).
TEST(Dpo, EveryLossTrains) {
  DpoFixture f;
  for (const char* loss : {"simpo", "rpo", "ipo", "hinge", "robust"}) {
    DpoOutcome o = f.run({std::string("dpo.loss=") + loss, "train.max_steps=2"});
    EXPECT_TRUE(std::isfinite(o.last_loss)) << loss;
    EXPECT_EQ(o.reference_resident, std::string(loss) != "simpo") << loss;
  }
}

// Stopping after 2 steps and resuming gives the uninterrupted run's losses and weights.
TEST(Dpo, ResumeContinuesExactly) {
  DpoFixture f;
  f.run({"run.output_dir=whole", "train.max_steps=4", "data.validation_fraction=0"});
  f.run({"run.output_dir=part", "train.max_steps=2", "data.validation_fraction=0", "train.checkpoint_every_steps=2"});
  RecipeFile file = load_recipe(f.tmp.path / "recipe.yaml",
                                {"run.output_dir=part", "train.max_steps=4", "data.validation_fraction=0"});
  run_dpo(parse_dpo_recipe(file), file, "latest");
  EXPECT_EQ(losses(f.metrics("part")), losses(f.metrics("whole")));
  EXPECT_EQ(read_text_file(f.tmp.path / "part/final/model.safetensors"), read_text_file(f.tmp.path / "whole/final/model.safetensors"));
}

// Pairs that cannot train are dropped and counted with their lines; broken records name file:line.
TEST(Dpo, BadPreferenceData) {
  DpoFixture f;
  std::string long_prompt(600, 'x');
  for (int i = 0; i < 600; i += 2) long_prompt[static_cast<size_t>(i)] = ' ';
  fs::path pairs = f.tmp.write("bad.jsonl",
                               R"({"prompt": "Greet Bob.", "chosen": "Hello, Bob!", "rejected": "Go away."})" "\n"
                               R"({"prompt": "Same", "chosen": "Yes", "rejected": "Yes"})" "\n"
                               R"({"prompt": ")" + long_prompt + R"(", "chosen": "a", "rejected": "b"})" "\n"
                               R"({"prompt": "Greet Ann.", "chosen": "Hello, Ann!", "rejected": "Bye."})" "\n");
  Tokenizer tokenizer = Tokenizer::load(f.tmp.path / "model");
  DataConfig config;
  config.sources = {{pairs.string(), 1.0}};
  config.max_seq_len = 96;
  PreferenceData data = prepare_preference_data(config, tokenizer, ChatFormat::deepseek_coder);
  EXPECT_EQ(data.train.size(), 2u);
  EXPECT_EQ(data.sources[0].dropped.at(kIdenticalPair), std::vector<size_t>{2});
  EXPECT_EQ(data.sources[0].dropped.at(kPromptTooLong), std::vector<size_t>{3});
  EXPECT_NE(data.summary().find("dropped 1 (identical chosen and rejected: line 2)"), std::string::npos) << data.summary();
  EXPECT_NE(data.summary().find("dropped 1 (prompt leaves no room for a response: line 3)"), std::string::npos);

  auto error = [&](const std::string& record) {
    f.tmp.write("one.jsonl", R"({"prompt": "Hi", "chosen": "Hello", "rejected": "Bye"})" "\n" + record + "\n");
    config.sources = {{(f.tmp.path / "one.jsonl").string(), 1.0}};
    return error_of([&] { prepare_preference_data(config, tokenizer, ChatFormat::deepseek_coder); });
  };
  const std::string where = (f.tmp.path / "one.jsonl").string() + ":2: ";
  EXPECT_EQ(error(R"({"prompt": "Hi", "chosen": "", "rejected": "Bye"})").rfind(where + "'chosen' is empty", 0), 0u);
  EXPECT_EQ(error(R"({"prompt": "Hi", "chosen": "Hello"})").rfind(where + "missing 'rejected'", 0), 0u);
  EXPECT_EQ(error(R"({"chosen": "Hello", "rejected": "Bye"})").rfind(where + "missing 'prompt'", 0), 0u);
  EXPECT_EQ(error(R"({"prompt": "Hi", "chosen": [{"role": "user", "content": "x"}], "rejected": "Bye"})")
                .rfind(where + "'chosen' and 'rejected' must hold assistant messages", 0),
            0u);
  // Every pair identical: nothing to train on, and the error says why.
  f.tmp.write("same.jsonl", R"({"prompt": "Hi", "chosen": "Yes", "rejected": "Yes"})" "\n");
  config.sources = {{(f.tmp.path / "same.jsonl").string(), 1.0}};
  EXPECT_NE(error_of([&] { prepare_preference_data(config, tokenizer, ChatFormat::deepseek_coder); })
                .find("no preference pairs left"),
            std::string::npos);
}

// Recipe errors name the key.
TEST(Dpo, RecipeErrorsNameTheKey) {
  DpoFixture f;
  auto error = [&](const std::string& override) {
    return error_of([&] { parse_dpo_recipe(load_recipe(f.tmp.path / "recipe.yaml", {override})); });
  };
  EXPECT_NE(error("dpo.loss=kto").find("dpo.loss"), std::string::npos);
  EXPECT_NE(error("dpo.beta=0").find("dpo.beta: must be > 0"), std::string::npos);
  EXPECT_NE(error("dpo.label_smoothing=0.7").find("dpo.label_smoothing"), std::string::npos);
  EXPECT_NE(error("dpo.reference.mode=cached").find("dpo.reference.mode"), std::string::npos);
  EXPECT_NE(error("dpo.refernce.mode=live").find("did you mean 'dpo.reference'"), std::string::npos);
  EXPECT_NE(error("train.batch_unit=tokens").find("train.batch_unit: DPO batches count preference pairs"), std::string::npos);
  EXPECT_NE(error_of([&] { f.run({"data.sources.0.weight=2"}); }).find("data.sources[0].weight"), std::string::npos);
  EXPECT_NE(error_of([&] { f.run({"model.path=nowhere"}); }).find("expected a Hugging Face checkpoint directory"),
            std::string::npos);
}

// The shipped DPO recipes parse and carry the paper's settings; the pipelines have a dpo stage
// whose output the export takes.
TEST(Dpo, ShippedRecipes) {
  fs::path recipes = source_dir() / "recipes";
  DpoRecipe r = parse_dpo_recipe(load_recipe(recipes / "deepseek-llm-7b" / "dpo.yaml", {}));
  EXPECT_EQ(read_text_file(recipes / "deepseek-llm-7b" / "dpo.yaml").rfind("# dsalign dpo ", 0), 0u);
  EXPECT_EQ(r.data.epochs, 1);
  EXPECT_DOUBLE_EQ(r.train.schedule.lr, 5e-6);
  EXPECT_EQ(r.train.global_batch_size, 512);
  EXPECT_EQ(r.train.schedule.kind, ScheduleConfig::Kind::cosine);
  EXPECT_GT(r.train.schedule.warmup_steps, 0);
  EXPECT_DOUBLE_EQ(r.loss.beta, 0.1);
  EXPECT_EQ(r.loss.type, DpoLossType::sigmoid);
  EXPECT_EQ(read_text_file(recipes / "quickstart" / "dpo.yaml").rfind("# dsalign dpo ", 0), 0u);
  parse_dpo_recipe(load_recipe(recipes / "quickstart" / "dpo.yaml", {}));
  for (const char* shipped : {"quickstart/pipeline.yaml", "deepseek-llm-7b/chat.yaml"}) {
    Pipeline p = parse_pipeline(load_recipe(recipes / shipped, {}));
    ASSERT_GE(p.stages.size(), 2u);
    const PipelineStage& dpo = p.stages[p.stages.size() - 2];
    EXPECT_EQ(dpo.kind, PipelineStage::Kind::dpo) << shipped;
    EXPECT_EQ(p.stages.back().from, dpo.output / "final") << shipped << ": the chat checkpoint is the DPO model";
  }
}

// A broken reference cache or fingerprint memo costs a recompute, never a wrong or failed run; a
// reference path that is not a checkpoint, or one with another vocabulary, is an error naming
// dpo.reference.path.
TEST(Dpo, BadReferenceInputs) {
  DpoFixture f;
  const std::vector<std::string> precomputed = {"train.max_steps=1", "dpo.reference.mode=precomputed"};
  f.run(precomputed);
  const double first = losses(f.metrics()).at(0);
  for (const auto& e : fs::directory_iterator(f.tmp.path / "refcache")) {
    std::ofstream(e.path(), std::ios::trunc) << "not a safetensors file {";  // cache entry and memo alike
  }
  f.run(precomputed);
  EXPECT_NEAR(losses(f.metrics()).at(0), first, 1e-6) << "recomputed after the cache was corrupted";

  EXPECT_NE(error_of([&] { f.run({"dpo.reference.path=nowhere"}); }).find("(dpo.reference.path): expected a Hugging Face checkpoint"),
            std::string::npos);
  SaveOptions save;
  save.dtype = torch::kFloat32;
  init_checkpoint(*model_preset("tiny"), 0, f.tmp.path / "other", save);
  EXPECT_NE(error_of([&] { f.run({"dpo.reference.path=other"}); }).find("(dpo.reference.path): vocab_size 512 differs"),
            std::string::npos);
}

// SIGINT during dpo: the run stops before its next step within seconds, naming the newest
// complete checkpoint; that checkpoint resumes, and nothing temporary is left.
TEST(Dpo, SigintStopsBeforeTheNextStepKeepingTheNewestCheckpoint) {
  using namespace dsalign::testing;
  DpoFixture f;
  const std::string cli = DSALIGN_CLI, recipe = (f.tmp.path / "recipe.yaml").string(), log = (f.tmp.path / "log").string();
  const std::string common = " train.checkpoint_every_steps=2 data.epochs=4";
  const pid_t pid = start_command("exec " + cli + " dpo " + recipe + common + " > " + log + " 2>&1");
  const fs::path metrics = f.tmp.path / "run" / "metrics.jsonl";
  ASSERT_TRUE(wait_until([&] { return fs::exists(metrics) && read_text_file(metrics).find("\"step\":5,") != std::string::npos; }, 120))
      << "the run never reached step 5\n" << read_text_file(log);
  ::kill(pid, SIGINT);
  ASSERT_EQ(wait_for_exit(pid, 10), 1) << "not stopped with exit code 1 within 10 s of SIGINT\n" << read_text_file(log);
  const std::string err = read_text_file(log);
  const size_t at = err.find("dsalign dpo: error: interrupted before step ");
  ASSERT_NE(at, std::string::npos) << err;
  EXPECT_NE(err.find("the newest complete checkpoint is ", at), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(f.tmp.path / "run" / "final"));
  EXPECT_EQ(temporaries(f.tmp.path / "run"), std::vector<std::string>{});
  ASSERT_EQ(std::system((cli + " dpo " + recipe + common + " --resume > " + log + " 2>&1").c_str()), 0) << read_text_file(log);
  EXPECT_TRUE(fs::exists(f.tmp.path / "run" / "final" / "model.safetensors"));
}
