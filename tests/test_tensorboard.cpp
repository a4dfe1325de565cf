// TensorBoard event files: the framing's CRC, reading back and resuming in C++, and the proof
// that TensorBoard's own reader (the tensorboard Python package) gets back every scalar of an
// SFT and a DPO run's metrics.jsonl, the recipe text, and a killed writer's file up to its last
// complete record.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "dpo/dpo_trainer.h"
#include "model/checkpoint.h"
#include "sft/sft_trainer.h"
#include "train/metric_tags.h"
#include "train/metrics.h"
#include "train/tensorboard_writer.h"
#include "util/files.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::TempDir;

namespace {

using Scalar = std::tuple<std::string, int64_t, double>;

// Every scalar of a run's metrics.jsonl under its TensorBoard tag.
std::vector<Scalar> metrics_scalars(const fs::path& run) {
  std::vector<Scalar> out;
  std::ifstream in(run / "metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json record = nlohmann::json::parse(line);
    for (const auto& [tag, value] : metric_scalars(record)) out.emplace_back(tag, record.value("step", int64_t{0}), value);
  }
  return out;
}

// What TensorBoard's EventAccumulator reads from `logdir`.
nlohmann::json tensorboard_reads(const fs::path& logdir, const fs::path& scratch) {
  const fs::path out = scratch / "tensorboard_reads.json";
  const std::string command = std::string(DSALIGN_PYTHON) + " " + DSALIGN_ORACLES_SRC + "/read_tensorboard.py " +
                              logdir.string() + " " + out.string() + " > " + (scratch / "oracle.log").string() + " 2>&1";
  EXPECT_EQ(std::system(command.c_str()), 0) << read_text_file(scratch / "oracle.log");
  return nlohmann::json::parse(read_text_file(out));
}

// TensorBoard stores scalars as float32: compare at that precision.
void expect_same_scalars(std::vector<Scalar> want, const nlohmann::json& got, const std::string& what) {
  std::vector<Scalar> read;
  for (const auto& s : got["scalars"]) read.emplace_back(s[0].get<std::string>(), s[1].get<int64_t>(), s[2].get<double>());
  auto order = [](const Scalar& a, const Scalar& b) {
    return std::tie(std::get<0>(a), std::get<1>(a)) < std::tie(std::get<0>(b), std::get<1>(b));
  };
  std::stable_sort(want.begin(), want.end(), order);
  std::stable_sort(read.begin(), read.end(), order);
  ASSERT_EQ(read.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(std::get<0>(read[i]), std::get<0>(want[i])) << what;
    EXPECT_EQ(std::get<1>(read[i]), std::get<1>(want[i])) << what << " " << std::get<0>(want[i]);
    EXPECT_EQ(std::get<2>(read[i]), static_cast<double>(static_cast<float>(std::get<2>(want[i]))))
        << what << " " << std::get<0>(want[i]) << " at step " << std::get<1>(want[i]);
  }
}

std::set<std::string> tags_of(const std::vector<Scalar>& scalars) {
  std::set<std::string> tags;
  for (const auto& s : scalars) tags.insert(std::get<0>(s));
  return tags;
}

fs::path tiny_model(const fs::path& dir) {
  SaveOptions save;
  save.dtype = torch::kFloat32;
  init_checkpoint(*model_preset("tiny-coder"), 0, dir, save);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-coder" / f, dir / f);
  return dir;
}

// A short SFT run with validation, the repetition monitor and an eval suite.
void write_sft_inputs(const TempDir& tmp) {
  std::ofstream data(tmp.path / "data.jsonl");
  const char* names[] = {"Alice", "Bob", "Carol", "Dan"};
  for (int i = 0; i < 96; ++i)
    data << R"({"prompt": "Greet )" << names[i % 4] << R"(.", "response": "Hello, )" << names[i % 4] << R"(!"})" << "\n";
  tmp.write("prompts.jsonl", "{\"prompt\": \"Greet Eve.\"}\n{\"prompt\": \"Greet Fay.\"}\n");
  tmp.write("mc.jsonl", "{\"query\": \"Greet Bob.\", \"choices\": [\"Hello, Bob!\", \"Bye.\"], \"gold\": 0}\n");
  tmp.write("suite.yaml", "suite: {name: mine, data_dir: .}\ntasks:\n  - {name: greet, method: mc, data: mc.jsonl}\n");
  tmp.write("sft.yaml",
            "run: {name: t, output_dir: sft}\nmodel: {path: model}\n"
            "data: {sources: [{path: data.jsonl}], max_seq_len: 96, validation_fraction: 0.1}\n"
            "train: {micro_batch_size: 4, global_batch_size: 8, lr: 0.003, warmup_steps: 2, schedule: constant,"
            " log_every: 1, val_every: 3, max_steps: 6, checkpoint_every_steps: 2, keep_last: 3}\n"
            "monitor:\n  repetition: {prompts: prompts.jsonl, max_new_tokens: 8, at_start: true, at_end: true}\n"
            "  eval: {suite: suite.yaml, every_steps: 3}\n");
}

}  // namespace

// The standard CRC-32C check value ("123456789" -> 0xE3069283), masked as TFRecord does.
TEST(TensorBoard, MaskedCrc32cOfTheCheckString) {
  const uint32_t crc = 0xE3069283u;
  EXPECT_EQ(masked_crc32c("123456789", 9), ((crc >> 15) | (crc << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, StableTagsForTheMetricsKeys) {
  const std::map<std::string, std::string> want = {
      {"loss", "train/loss"}, {"lr", "train/lr"}, {"grad_norm", "train/grad_norm"},
      {"tokens_per_s", "perf/tokens_per_s"}, {"mfu", "perf/mfu"}, {"peak_memory_bytes", "memory/peak_bytes"},
      {"val_loss", "val/loss"}, {"rewards/margin", "dpo/rewards/margin"}, {"val_rewards/accuracy", "val/rewards/accuracy"},
      {"repetition_ratio", "repetition/ratio"}, {"eval/arc_easy/acc_norm", "eval/arc_easy/acc_norm"}};
  for (const auto& [key, tag] : want) EXPECT_EQ(metric_tag(key), tag) << key;
  const auto scalars = metric_scalars({{"step", 3}, {"time", 1.5}, {"loss", 2.0}, {"mfu", nullptr}, {"repetition_report", "x"},
                                       {"peak_memory_bytes_per_rank", {10, 20}}, {"reference_resident", true}});
  const std::vector<std::pair<std::string, double>> expected = {
      {"train/loss", 2.0}, {"memory/peak_bytes/rank_0", 10}, {"memory/peak_bytes/rank_1", 20}, {"dpo/reference_resident", 1}};
  EXPECT_EQ(scalars, expected);
}

// Written, read back, continued, and cut back to a resumed step; a torn record ends the read.
TEST(TensorBoard, WriterReadsBackAppendsAndTruncates) {
  TempDir tmp;
  const fs::path dir = tmp.path / "tb";
  {
    TensorBoardWriter w(dir, false);
    for (int64_t step = 1; step <= 4; ++step) w.add_scalars(step, 100.0 + step, {{"train/loss", 1.0 / step}, {"train/lr", 0.5}});
  }
  {
    TensorBoardWriter w(dir, true);
    EXPECT_EQ(tensorboard_event_files(dir).size(), 1u);
    w.add_scalars(5, 105.0, {{"train/loss", 0.2}});
  }
  const fs::path file = tensorboard_event_files(dir).at(0);
  auto scalars = read_tensorboard_scalars(file);
  ASSERT_EQ(scalars.size(), 9u);
  EXPECT_EQ(scalars.back().tag, "train/loss");
  EXPECT_EQ(scalars.back().step, 5);
  EXPECT_FLOAT_EQ(scalars.back().value, 0.2f);

  truncate_tensorboard(dir, 2);
  scalars = read_tensorboard_scalars(file);
  ASSERT_EQ(scalars.size(), 4u);
  EXPECT_EQ(scalars.back().step, 2);
  EXPECT_EQ(read_tfrecords(file).records.size(), 3u);  // file_version + steps 1 and 2

  // A writer killed mid-record: the complete records are read, and a resume drops the torn one.
  std::string bytes = read_text_file(file);
  {
    TensorBoardWriter w(dir, true);
    w.add_scalars(3, 103.0, {{"train/loss", 0.3}});
  }
  const std::string whole = read_text_file(file);
  write_file_atomic(file, whole.substr(0, whole.size() - 5));
  TfRecords torn = read_tfrecords(file);
  EXPECT_FALSE(torn.clean);
  EXPECT_EQ(torn.records.size(), 3u);
  truncate_tensorboard(dir, 2);
  EXPECT_EQ(read_text_file(file), bytes);
  EXPECT_TRUE(read_tfrecords(file).clean);
}

// The oracle: TensorBoard reads back every scalar of metrics.jsonl (tags, steps, values) of an
// SFT run (loss, validation, repetition ratio, eval suite) and a DPO run, and the recipe text.
TEST(TensorBoard, TensorBoardReadsEveryScalarOfSftAndDpoRuns) {
  TempDir tmp;
  tiny_model(tmp.path / "model");
  write_sft_inputs(tmp);
  RecipeFile sft = load_recipe(tmp.path / "sft.yaml", {});
  run_sft(parse_sft_recipe(sft), sft);

  std::ifstream in(fs::path(DSALIGN_SOURCE_DIR) / "recipes/quickstart/data/preference.jsonl");
  std::ofstream pairs(tmp.path / "pairs.jsonl");
  std::string line;
  for (int i = 0; i < 40 && std::getline(in, line); ++i) pairs << line << "\n";
  pairs.close();
  tmp.write("dpo.yaml",
            "run: {name: d, output_dir: dpo}\nmodel: {path: model}\n"
            "data: {sources: [{path: pairs.jsonl}], max_seq_len: 160, validation_fraction: 0.2}\n"
            "train: {micro_batch_size: 4, global_batch_size: 8, lr: 0.002, schedule: constant, log_every: 1, val_every: 2}\n"
            "dpo: {loss: sigmoid, beta: 0.1}\n");
  RecipeFile dpo = load_recipe(tmp.path / "dpo.yaml", {});
  run_dpo(parse_dpo_recipe(dpo), dpo);

  for (const char* run : {"sft", "dpo"}) {
    const std::vector<Scalar> want = metrics_scalars(tmp.path / run);
    const nlohmann::json got = tensorboard_reads(tmp.path / run / "tensorboard", tmp.path);
    expect_same_scalars(want, got, run);
    const std::string recipe = read_text_file(tmp.path / run / "config.yaml");
    ASSERT_TRUE(got["texts"].contains("recipe")) << run;
    EXPECT_EQ(got["texts"]["recipe"][0][0].get<int64_t>(), 0);
    EXPECT_EQ(got["texts"]["recipe"][0][1].get<std::string>(), recipe_markdown(recipe));
  }
  const std::set<std::string> sft_tags = tags_of(metrics_scalars(tmp.path / "sft"));
  for (const char* tag : {"train/loss", "train/lr", "train/grad_norm", "perf/tokens_per_s", "memory/peak_bytes", "val/loss",
                          "repetition/ratio", "eval/greet/acc"})
    EXPECT_TRUE(sft_tags.count(tag)) << tag;
  const std::set<std::string> dpo_tags = tags_of(metrics_scalars(tmp.path / "dpo"));
  for (const char* tag : {"train/loss", "dpo/rewards/margin", "dpo/rewards/accuracy", "val/rewards/margin", "val/loss"})
    EXPECT_TRUE(dpo_tags.count(tag)) << tag;

  // A killed writer: the file cut inside its last record reads up to the record before.
  const fs::path cut = tmp.path / "cut";
  fs::create_directories(cut);
  const fs::path file = tensorboard_event_files(tmp.path / "sft" / "tensorboard").at(0);
  const std::string bytes = read_text_file(file);
  const TfRecords records = read_tfrecords(file);
  const size_t last = records.records.back().size() + 16;
  write_file_atomic(cut / file.filename(), bytes.substr(0, bytes.size() - last / 2));
  std::vector<Scalar> want;
  {
    const fs::path whole = cut / "whole";  // the same records but the last, written whole
    fs::create_directories(whole);
    write_file_atomic(whole / file.filename(), bytes.substr(0, bytes.size() - last));
    for (const auto& s : read_tensorboard_scalars(whole / file.filename())) want.emplace_back(s.tag, s.step, s.value);
    fs::remove_all(whole);
  }
  ASSERT_FALSE(want.empty());
  expect_same_scalars(want, tensorboard_reads(cut, tmp.path), "a file cut inside its last record");
}

// A resumed run (from the step-4 checkpoint of a 6-step run) rewrites steps 5 and 6 once, in
// order, in the same file: TensorBoard reads what metrics.jsonl holds.
// Monitors run every 2 steps, so the step-4 checkpoint's own monitors (logged after it) are
// dropped on resume and logged again: the resumed logs equal an uninterrupted run's.
TEST(TensorBoard, ResumedRunAppendsWithoutRepeatingSteps) {
  TempDir tmp;
  tiny_model(tmp.path / "model");
  write_sft_inputs(tmp);
  RecipeFile sft = load_recipe(tmp.path / "sft.yaml", {"monitor.eval.every_steps=2", "monitor.repetition.every_steps=2"});
  run_sft(parse_sft_recipe(sft), sft);
  const std::vector<Scalar> whole = metrics_scalars(tmp.path / "sft");
  fs::remove_all(tmp.path / "sft" / "final");
  run_sft(parse_sft_recipe(sft), sft, (tmp.path / "sft" / "checkpoints" / "step_4").string());
  std::set<std::pair<std::string, int64_t>> want, got;
  for (const auto& [tag, step, value] : whole) want.insert({tag, step});
  std::map<std::pair<std::string, int64_t>, int> logged;
  for (const auto& [tag, step, value] : metrics_scalars(tmp.path / "sft")) {
    got.insert({tag, step});
    const int times = ++logged[std::make_pair(tag, step)];
    EXPECT_EQ(times, 1) << "metrics.jsonl: " << tag << " at step " << step << " twice";
  }
  EXPECT_EQ(got, want) << "the resumed run's metrics differ from the uninterrupted run's in tags or steps";
  const auto files = tensorboard_event_files(tmp.path / "sft" / "tensorboard");
  ASSERT_EQ(files.size(), 1u);
  int64_t previous = 0;
  std::map<std::pair<std::string, int64_t>, int> seen;
  for (const auto& s : read_tensorboard_scalars(files[0])) {
    EXPECT_GE(s.step, previous) << s.tag;
    previous = s.step;
    const int times = ++seen[std::make_pair(s.tag, s.step)];
    EXPECT_EQ(times, 1) << s.tag << " at step " << s.step << " twice";
  }
  EXPECT_EQ(previous, 6);
  expect_same_scalars(metrics_scalars(tmp.path / "sft"), tensorboard_reads(tmp.path / "sft" / "tensorboard", tmp.path),
                      "resumed");
}
