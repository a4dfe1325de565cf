// Schedules, the train section, recipe files and command-line overrides.
#include <gtest/gtest.h>

#include <fstream>

#include "train/recipe_file.h"
#include "train/train_config.h"
#include "util/error.h"
#include "util/files.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::error_of;

namespace {

TrainConfig train_from(const std::string& yaml) {
  YamlReader reader(YAML::Load(yaml), "train", "recipe.yaml");
  return parse_train_config(reader);
}

}  // namespace

// DeepSeek LLM: warmup, then the peak until 80% of the steps, x0.316 until 90%, x0.1 after.
TEST(Schedule, MultiStepAsInThePaper) {
  ScheduleConfig c;
  c.lr = 1e-5;
  c.warmup_steps = 10;
  EXPECT_DOUBLE_EQ(learning_rate(c, 1, 1000), 1e-6);
  EXPECT_DOUBLE_EQ(learning_rate(c, 10, 1000), 1e-5);
  EXPECT_DOUBLE_EQ(learning_rate(c, 800, 1000), 1e-5);
  EXPECT_DOUBLE_EQ(learning_rate(c, 801, 1000), 1e-5 * 0.316);
  EXPECT_DOUBLE_EQ(learning_rate(c, 900, 1000), 1e-5 * 0.316);
  EXPECT_DOUBLE_EQ(learning_rate(c, 901, 1000), 1e-6);
  EXPECT_DOUBLE_EQ(learning_rate(c, 1000, 1000), 1e-6);
}

TEST(Schedule, CosineWithFloorAndConstant) {
  ScheduleConfig c;
  c.kind = ScheduleConfig::Kind::cosine;
  c.lr = 2.0;
  c.warmup_steps = 4;
  c.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(learning_rate(c, 2, 104), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate(c, 4, 104), 2.0);
  EXPECT_NEAR(learning_rate(c, 54, 104), 0.2 + 1.8 * 0.5, 1e-12);
  EXPECT_NEAR(learning_rate(c, 104, 104), 0.2, 1e-12);
  c.kind = ScheduleConfig::Kind::constant;
  EXPECT_DOUBLE_EQ(learning_rate(c, 100, 104), 2.0);
}

TEST(TrainConfig, ParsesAndNamesBadKeys) {
  TrainConfig c = train_from("micro_batch_size: 2\nglobal_batch_size: 8\nlr: 1e-5\nschedule: cosine\nmin_lr_ratio: 0.1\n");
  EXPECT_EQ(c.global_batch_size, 8);
  EXPECT_EQ(c.schedule.kind, ScheduleConfig::Kind::cosine);
  EXPECT_DOUBLE_EQ(c.beta2, 0.95);
  EXPECT_DOUBLE_EQ(c.weight_decay, 0.1);
  c = train_from("lr: 1e-5\nmilestones: [0.5, 0.75]\nfactors: [0.5, 0.25]\n");
  EXPECT_EQ(c.schedule.milestones, (std::vector<double>{0.5, 0.75}));

  EXPECT_NE(error_of([] { train_from("micro_batch_size: 3\nglobal_batch_size: 8\nlr: 1\n"); })
                .find("train.global_batch_size: must be a multiple of micro_batch_size (3)"),
            std::string::npos);
  EXPECT_NE(error_of([] { train_from("lr: 1e-5\ngrad_clipp: 1\n"); }).find("train.grad_clipp: unknown key (did you mean 'train.grad_clip'?)"),
            std::string::npos);
  EXPECT_NE(error_of([] { train_from("lr: fast\n"); }).find("train.lr: expected a number, got 'fast'"), std::string::npos);
  EXPECT_NE(error_of([] { train_from("micro_batch_size: 1\n"); }).find("train.lr: missing"), std::string::npos);
  EXPECT_NE(error_of([] { train_from("lr: 1\nmilestones: [0.5]\n"); }).find("one factor per milestone"), std::string::npos);
}

TEST(RecipeFile, OverridesAndErrors) {
  fs::path file = fs::temp_directory_path() / ("dsalign_recipe_" + std::to_string(::getpid()) + ".yaml");
  std::ofstream(file) << "run: {name: x}\ntrain: {lr: 1.0e-5}\ndata:\n  sources:\n    - {path: a.jsonl}\n";
  RecipeFile r = load_recipe(file, {"train.lr=2e-5", "data.sources.0.weight=0.5", "train.milestones=[0.5, 0.9]",
                                    "monitor.repetition.every=10"});
  EXPECT_EQ(r.root["train"]["lr"].as<double>(), 2e-5);
  EXPECT_EQ(r.root["data"]["sources"][0]["weight"].as<double>(), 0.5);
  EXPECT_EQ(r.root["train"]["milestones"].size(), 2u);
  EXPECT_EQ(r.root["monitor"]["repetition"]["every"].as<int>(), 10);
  EXPECT_NE(r.dump().find("weight: 0.5"), std::string::npos);

  EXPECT_NE(error_of([&] { load_recipe(file, {"train.lr"}); }).find("expected key.path=value"), std::string::npos);
  EXPECT_NE(error_of([&] { load_recipe(file, {"data.sources.3.path=b"}); }).find("index 3 is past the list's 1 items"),
            std::string::npos);
  // A CI fuzz finding: a key under a scalar (train.lr is a number) threw from yaml-cpp.
  EXPECT_NE(error_of([&] { load_recipe(file, {"train.lr.path=b"}); }).find("'lr' is not a mapping"), std::string::npos);
  std::ofstream(file) << "train: {lr: [1, 2}\n";
  EXPECT_NE(error_of([&] { load_recipe(file, {}); }).find("YAML syntax error"), std::string::npos);
  fs::remove(file);
  EXPECT_NE(error_of([&] { load_recipe(file, {}); }).find("recipe not found"), std::string::npos);
}

// A recipe whose YAML aliases loop or multiply is an error naming the file, not a hang or a
// stack overflow in whatever walks the tree next.
TEST(RecipeFile, AliasLoopsAndBombsAreErrors) {
  dsalign::testing::TempDir tmp;
  const auto loop = tmp.write("loop.yaml", "run: &r {name: x, again: *r}\n");
  EXPECT_NE(dsalign::testing::error_of([&] { load_recipe(loop, {}); }).find("loop.yaml: a YAML alias refers to a node that contains it"),
            std::string::npos);
  const auto fine = tmp.write("fine.yaml", "run: {name: x}\n");
  EXPECT_NE(dsalign::testing::error_of([&] { load_recipe(fine, {"train.x=&a [1, *a]"}); }).find("with its overrides"),
            std::string::npos);
  std::string bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\n";
  for (char c = 'b'; c <= 'f'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ",*" : "*") + static_cast<char>(c - 1);
    bomb += "]\n";
  }
  EXPECT_NE(dsalign::testing::error_of([&] { load_recipe(tmp.write("bomb.yaml", bomb), {}); }).find("YAML nodes once aliases"),
            std::string::npos);
}
