// The SFT trainer end to end on a tiny deepseek-coder-shaped model (CPU): the run directory, a
// falling loss, bitwise-deterministic reruns, the final export, and refusing to clobber a run.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "model/checkpoint.h"
#include "sft/sft_trainer.h"
#include "util/error.h"
#include "util/files.h"

using namespace dsalign;

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
