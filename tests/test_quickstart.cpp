// The quickstart, shortened (issue 16): its own pipeline, recipes, model.json and data, run by
// `dsalign run` with fewer steps per stage (about 80 s on one core), must make the held-out
// exact match rise from the base model to the exported chat model and the repetition ratio fall,
// and `dsalign report --text` and `dsalign eval gen --samples` must show it. The full quickstart's
// figures (99 of 100 held out) are in the README.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "util/files.h"
#include "process_util.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::TempDir;
namespace fs = std::filesystem;

namespace {

using dsalign::testing::CommandResult;
CommandResult run(const std::string& command) { return dsalign::testing::run_command(command); }

// The metrics.jsonl records of a run that hold `key`.
std::vector<nlohmann::json> records_with(const fs::path& run_dir, const std::string& key) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_text_file(run_dir / "metrics.jsonl"));
  for (std::string line; std::getline(in, line);) {
    nlohmann::json j = nlohmann::json::parse(line);
    if (j.contains(key)) out.push_back(std::move(j));
  }
  return out;
}

}  // namespace

TEST(Quickstart, ShortenedPipelineRaisesHeldOutExactMatch) {
  TempDir tmp;
  const fs::path root = DSALIGN_SOURCE_DIR, quickstart = root / "recipes" / "quickstart";
  const std::string cache = "data.cache_dir: " + (tmp.path / "tokens").string();
  // The shipped stages with fewer steps, and caches in the temporary directory.
  std::ofstream(tmp.path / "pipeline.yaml")
      << "run: {name: short, output_dir: " << (tmp.path / "out").string() << "}\nstages:\n"
      << "  - {name: init, init: {config: " << (quickstart / "model.json").string()
      << ", tokenizer: " << (root / "assets/tokenizers/deepseek-coder").string() << "}}\n"
      << "  - {name: pretrain, sft: " << (quickstart / "pretrain.yaml").string()
      << ", overrides: {model.path: '${init.output}', train.max_steps: 20, " << cache << "}}\n"
      << "  - {name: sft_stage1, sft: " << (quickstart / "sft_stage1.yaml").string()
      << ", overrides: {model.path: '${pretrain.output}', train.max_steps: 120, train.val_every: 0,"
         " train.checkpoint_every_minutes: 0, " << cache << "}}\n"
      << "  - {name: sft_stage2, sft: " << (quickstart / "sft_stage2.yaml").string()
      << ", overrides: {model.path: '${sft_stage1.output}', train.max_steps: 20, train.checkpoint_every_minutes: 0, "
      << cache << "}}\n"
      << "  - {name: dpo, dpo: " << (quickstart / "dpo.yaml").string()
      << ", overrides: {model.path: '${sft_stage2.output}', train.max_steps: 12, " << cache
      << ", dpo.reference.cache_dir: " << (tmp.path / "reference").string() << "}}\n"
      << "  - {name: chat, export: {from: '${dpo.output}', dtype: bf16}}\n";
  // One thread each: ctest runs other tests beside this one on a small machine, and two
  // processes' spinning intra-op threads on two cores made this test take 7 minutes instead of 1.
  const std::string cli = std::string("OMP_NUM_THREADS=1 ") + DSALIGN_CLI;
  const CommandResult pipeline = run(cli + " run " + (tmp.path / "pipeline.yaml").string());
  ASSERT_EQ(pipeline.status, 0) << pipeline.out;

  // The base model (stage 1 before its first step) answers nothing right and mostly loops.
  const std::vector<nlohmann::json> stage1 = records_with(tmp.path / "out" / "sft_stage1", "eval/heldout/exact_match");
  ASSERT_EQ(stage1.size(), 2u);
  EXPECT_EQ(stage1[0]["step"], 0);
  const double base = stage1[0]["eval/heldout/exact_match"].get<double>();
  EXPECT_LE(base, 0.02) << stage1[0].dump();
  EXPECT_GE(stage1[0]["eval/heldout/repetition_ratio"].get<double>(), 0.3) << stage1[0].dump();
  EXPECT_GT(stage1[1]["eval/heldout/exact_match"].get<double>(), base + 0.1) << stage1[1].dump();
  // DPO separates its held-out pairs and measures its model at the end.
  const std::vector<nlohmann::json> dpo_eval = records_with(tmp.path / "out" / "dpo", "eval/heldout/exact_match");
  ASSERT_EQ(dpo_eval.size(), 1u);
  const std::vector<nlohmann::json> validation = records_with(tmp.path / "out" / "dpo", "val_rewards/accuracy");
  ASSERT_FALSE(validation.empty());
  EXPECT_GE(validation.back()["val_rewards/accuracy"].get<double>(), 0.6) << validation.back().dump();

  // The exported bf16 chat model, scored by `dsalign eval gen --task chat` as the quickstart does.
  const fs::path gen = tmp.path / "chat_heldout.jsonl";
  const CommandResult eval = run(cli + " eval gen --task chat --model " + (tmp.path / "out" / "chat").string() + " --data " +
                          (quickstart / "data" / "heldout.jsonl").string() + " --out " + gen.string() +
                          " --samples 4 --seed 7");
  ASSERT_EQ(eval.status, 0) << eval.out;
  std::istringstream lines(read_text_file(gen));
  std::string line;
  ASSERT_TRUE(std::getline(lines, line));
  const nlohmann::json summary = nlohmann::json::parse(line);
  EXPECT_EQ(summary["problems"], 100);
  EXPECT_GE(summary["exact_match"].get<double>(), base + 0.1) << summary.dump();
  EXPECT_LE(summary["repetition_ratio"].get<double>(), 0.1) << summary.dump();
  EXPECT_NE(eval.out.find("answers drawn at random (--samples 4 --seed 7):"), std::string::npos) << eval.out;
  // The same seed draws the same answers.
  const CommandResult again = run(cli + " eval gen --task chat --model " + (tmp.path / "out" / "chat").string() + " --data " +
                           (quickstart / "data" / "heldout.jsonl").string() + " --out " + gen.string() +
                           " --samples 4 --seed 7 --cases 0");
  ASSERT_EQ(again.status, 0) << again.out;
  const std::string drawn = eval.out.substr(eval.out.find("answers drawn at random"));
  EXPECT_NE(again.out.find(drawn.substr(0, drawn.find("\n100 problems"))), std::string::npos) << again.out;

  // `dsalign report --text` tabulates the stages, from the base model to DPO.
  const CommandResult report = run(cli + " report " + (tmp.path / "out").string() + " --text");
  ASSERT_EQ(report.status, 0) << report.out;
  const size_t table = report.out.find("stage by stage");
  ASSERT_NE(table, std::string::npos) << report.out;
  for (const char* row : {"base (before sft_stage1)", "\n  sft_stage1 ", "\n  sft_stage2 ", "\n  dpo "})
    EXPECT_NE(report.out.find(row, table), std::string::npos) << row << "\n" << report.out;
}
