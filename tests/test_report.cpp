// `dsalign report`: reading run and pipeline directories (torn, malformed and old metrics),
// the page's contents, the terminal summary, clear errors, and the page rendered in headless
// Chromium (charts drawn, run names shown, no console errors, a screenshot kept).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "report/html_report.h"
#include "report/run_metrics.h"
#include "report/stage_table.h"
#include "report/text_report.h"
#include "util/files.h"
#include "process_util.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::TempDir;

namespace {

using dsalign::testing::CommandResult;
CommandResult run(const std::string& command) { return dsalign::testing::run_command(command); }

std::string cli() { return DSALIGN_CLI; }

// A run directory as dsalign writes it: config.yaml and `steps` logged steps, plus extra lines.
fs::path write_run(const fs::path& dir, const std::string& kind, int64_t steps, double start_loss, double time0,
                   const std::string& extra = "") {
  fs::create_directories(dir);
  std::ofstream(dir / "config.yaml") << "run: {name: " << dir.filename().string() << ", output_dir: " << dir.string()
                                     << "}\nmodel: {path: /models/base}\ndata:\n  sources: [{path: /data/" << kind
                                     << ".jsonl}]\ntrain: {lr: " << (kind == "dpo" ? "5.0e-7" : "1.0e-5") << "}\n";
  std::ofstream out(dir / "metrics.jsonl");
  if (kind == "sft") out << nlohmann::json({{"step", 0}, {"repetition_ratio", 0.8}, {"time", time0}}).dump() << "\n";
  for (int64_t s = 1; s <= steps; ++s) {
    nlohmann::json r = {{"step", s}, {"loss", start_loss / static_cast<double>(s)}, {"lr", 1e-5}, {"grad_norm", 1.0},
                        {"tokens_per_s", 1000.0}, {"peak_memory_bytes", 1 << 30}, {"tokens_seen", 512 * s},
                        {"time", time0 + static_cast<double>(s)}};
    if (kind == "dpo") r["rewards/margin"] = 0.1 * static_cast<double>(s), r["rewards/accuracy"] = 0.5;
    out << r.dump() << "\n";
  }
  if (kind == "sft")
    out << nlohmann::json({{"step", steps}, {"val_loss", 0.9}, {"repetition_ratio", 0.1}, {"eval/greet/acc", 0.75},
                           {"time", time0 + static_cast<double>(steps) + 1}})
               .dump()
        << "\n";
  if (kind == "dpo")
    out << nlohmann::json({{"step", steps}, {"val_rewards/accuracy", 0.9}, {"time", time0 + static_cast<double>(steps) + 1}}).dump()
        << "\n";
  out << extra;
  return dir;
}

// A pipeline directory whose pipeline.json lists its stages in run order (init and export have no metrics).
fs::path write_pipeline(const fs::path& dir) {
  write_run(dir / "sft_stage1", "sft", 10, 4.0, 1000);
  write_run(dir / "sft_stage2", "sft", 6, 2.0, 2000);
  write_run(dir / "dpo", "dpo", 8, 0.7, 3000);
  std::ofstream(dir / "pipeline.json") << R"({"name": "qs", "stages": [{"name": "init", "kind": "init"},
    {"name": "sft_stage1", "kind": "sft"}, {"name": "sft_stage2", "kind": "sft"}, {"name": "dpo", "kind": "dpo"},
    {"name": "chat", "kind": "export"}]})";
  return dir;
}

}  // namespace

TEST(Report, ReadsThePartOfAKilledRunAndNamesWhatItSkipped) {
  TempDir tmp;
  // A malformed line in the middle and a last line cut short, as a killed writer leaves it.
  write_run(tmp.path / "run", "sft", 5, 3.0, 100, "not json\n{\"step\": 6, \"loss\": 0.");
  const RunMetrics r = read_run(tmp.path / "run", "run");
  EXPECT_EQ(r.series.at("train/loss").size(), 5u);
  ASSERT_EQ(r.warnings.size(), 2u);
  EXPECT_NE(r.warnings[0].find("metrics.jsonl line 8: not a metrics record"), std::string::npos) << r.warnings[0];
  EXPECT_NE(r.warnings[1].find("metrics.jsonl line 9: cut short"), std::string::npos) << r.warnings[1];
  EXPECT_EQ(r.summary.steps, 5);
  EXPECT_DOUBLE_EQ(*r.summary.final_loss, 0.6);
  EXPECT_DOUBLE_EQ(*r.summary.final_val_loss, 0.9);
  EXPECT_DOUBLE_EQ(*r.summary.first_repetition_ratio, 0.8);
  EXPECT_DOUBLE_EQ(*r.summary.repetition_ratio, 0.1);
  EXPECT_DOUBLE_EQ(*r.summary.wall_seconds, 6.0);
  EXPECT_DOUBLE_EQ(*r.summary.peak_memory_bytes, 1 << 30);
  EXPECT_EQ(*r.summary.tokens, 2560);
  EXPECT_DOUBLE_EQ(r.summary.eval.at("greet/acc"), 0.75);
  EXPECT_EQ(r.summary.model, "/models/base");
  EXPECT_EQ(r.summary.data, "/data/sft.jsonl");
  // The page and the terminal name the skipped lines too.
  ReportInput input = read_report_input(tmp.path / "run");
  EXPECT_NE(html_report({input}).find("line 9: cut short"), std::string::npos);
  EXPECT_NE(text_report({input}).find("warning: "), std::string::npos);
}

// Metrics from before "time" was logged, without config.yaml: the readable part, wall time n/a.
TEST(Report, OlderMetricsWithoutTimesOrRecipe) {
  TempDir tmp;
  tmp.write("metrics.jsonl", "{\"step\": 1, \"loss\": 2.0}\n{\"step\": 2, \"loss\": 1.0}\n");
  const ReportInput input = read_report_input(tmp.path);
  ASSERT_EQ(input.runs.size(), 1u);
  EXPECT_FALSE(input.runs[0].summary.wall_seconds);
  EXPECT_EQ(input.runs[0].summary.model, "?");
  EXPECT_NE(text_report({input}).find("n/a (no times: older metrics)"), std::string::npos);
  EXPECT_NE(html_report({input}).find("n/a (no times: older metrics)"), std::string::npos);
}

TEST(Report, PipelineStagesInRunOrderOnOneStepAxis) {
  TempDir tmp;
  const ReportInput input = read_report_input(write_pipeline(tmp.path / "qs"));
  ASSERT_TRUE(input.pipeline);
  ASSERT_EQ(input.runs.size(), 3u);
  EXPECT_EQ(input.runs[0].name, "qs/sft_stage1");
  EXPECT_EQ(input.runs[1].name, "qs/sft_stage2");
  EXPECT_EQ(input.runs[2].name, "qs/dpo");
  EXPECT_EQ(stage_offsets(input), (std::vector<int64_t>{0, 10, 16}));
  // Without pipeline.json: the stages by the time of their first record.
  fs::remove(tmp.path / "qs" / "pipeline.json");
  const ReportInput by_time = read_report_input(tmp.path / "qs");
  ASSERT_EQ(by_time.runs.size(), 3u);
  EXPECT_EQ(by_time.runs[2].name, "qs/dpo");
  EXPECT_EQ(by_time.runs[0].name, "qs/sft_stage1");
  // A pipeline.json that is not JSON (or not a listing): the same order by time, and a warning.
  for (const char* bad : {"{\"stages\": [", "[1, 2]", "\xff\xfe binary"}) {
    std::ofstream(tmp.path / "qs" / "pipeline.json") << bad;
    const ReportInput fallback = read_report_input(tmp.path / "qs");
    ASSERT_EQ(fallback.runs.size(), 3u) << bad;
    EXPECT_EQ(fallback.runs[0].name, "qs/sft_stage1") << bad;
    EXPECT_EQ(fallback.runs[2].name, "qs/dpo") << bad;
    ASSERT_FALSE(fallback.runs[0].warnings.empty()) << bad;
    EXPECT_NE(fallback.runs[0].warnings[0].find("pipeline.json: not a pipeline listing; ordering its stages by time"),
              std::string::npos)
        << fallback.runs[0].warnings[0];
  }
}

TEST(Report, PageIsSelfContainedAndEscapesWhatItShows) {
  TempDir tmp;
  write_run(tmp.path / "a", "sft", 4, 2.0, 10);
  write_run(tmp.path / "b</script><b>", "sft", 4, 3.0, 20);
  std::ofstream(tmp.path / "b</script><b>" / "config.yaml", std::ios::app) << "extra: \"</script>\"\n";
  const std::string html = html_report({read_report_input(tmp.path / "a"), read_report_input(tmp.path / "b</script><b>")});
  EXPECT_NE(html.find("Chart.js v3"), std::string::npos) << "Chart.js is not inline";
  EXPECT_EQ(html.find("src=\"http"), std::string::npos);
  EXPECT_EQ(html.find("b</script><b>"), std::string::npos) << "a run name reached the page unescaped";
  EXPECT_NE(html.find("b&lt;/script&gt;&lt;b&gt;"), std::string::npos);
  // Recipe differences: train.lr is the same, run.name and extra differ.
  const std::string diff = html.substr(html.find("Recipe differences"));
  EXPECT_NE(diff.find(">run.name<"), std::string::npos);
  EXPECT_NE(diff.find(">extra<"), std::string::npos);
  EXPECT_EQ(diff.find(">train.lr<"), std::string::npos);
}

// Recipes and listings that would loop, crash or lead outside: a warning or nothing, never a crash.
TEST(Report, HostileRecipesAndListings) {
  TempDir tmp;
  write_run(tmp.path / "qs" / "sft_stage1", "sft", 3, 1.0, 10);
  std::ofstream(tmp.path / "qs" / "sft_stage1" / "config.yaml") << "a: &x [1, *x]\n";
  write_run(tmp.path / "outside", "sft", 3, 1.0, 10);
  std::ofstream(tmp.path / "qs" / "pipeline.json")
      << R"({"stages": [{"name": 5}, {"name": "../outside"}, {"name": "/etc"}, {"name": "sft_stage1"}]})";
  const ReportInput input = read_report_input(tmp.path / "qs");
  ASSERT_EQ(input.runs.size(), 1u);
  EXPECT_EQ(input.runs[0].name, "qs/sft_stage1");
  ASSERT_FALSE(input.runs[0].warnings.empty());
  EXPECT_NE(input.runs[0].warnings[0].find("refers to a node that contains it"), std::string::npos) << input.runs[0].warnings[0];
  // Nested aliases that would expand a million times.
  std::ofstream(tmp.path / "qs" / "sft_stage1" / "config.yaml")
      << "a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
         "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n";
  const RunMetrics r = read_run(tmp.path / "qs" / "sft_stage1", "x");
  ASSERT_FALSE(r.warnings.empty());
  EXPECT_NE(r.warnings[0].find("YAML nodes once aliases are expanded"), std::string::npos) << r.warnings[0];
  // Huge and non-finite values, and a step past 2^53.
  fs::create_directories(tmp.path / "odd");
  std::ofstream(tmp.path / "odd" / "metrics.jsonl")
      << "{\"step\": 1, \"loss\": 1e300, \"tokens_seen\": 1e300, \"time\": 1e300}\n"
         "{\"step\": 99999999999999999999, \"loss\": 1}\n{\"step\": -3, \"loss\": 1}\n{\"step\": 2, \"loss\": null, \"time\": -1e300}\n";
  const ReportInput odd = read_report_input(tmp.path / "odd");
  EXPECT_EQ(odd.runs[0].warnings.size(), 3u);  // the two steps out of range, and no config.yaml
  EXPECT_FALSE(odd.runs[0].summary.tokens);
  EXPECT_NE(text_report({odd}).find("train/loss"), std::string::npos);
  html_report({odd});
}

TEST(Report, TextSummaryWithSparklines) {
  TempDir tmp;
  const ReportInput input = read_report_input(write_pipeline(tmp.path / "qs"));
  const std::string text = text_report({input});
  EXPECT_NE(text.find("== pipeline qs: 3 training stages"), std::string::npos) << text;
  EXPECT_NE(text.find("qs/dpo"), std::string::npos);
  EXPECT_NE(text.find("repetition ratio  0.8 -> 0.1"), std::string::npos) << text;
  EXPECT_NE(text.find("reward accuracy   0.9"), std::string::npos) << text;
  EXPECT_NE(text.find("train/loss"), std::string::npos);
  EXPECT_NE(text.find("█"), std::string::npos);
  EXPECT_EQ(sparkline({3, 2, 1, 0}, 10), "█▆▃▁");
  EXPECT_EQ(sparkline({1, 1}, 10), "▅▅");
  EXPECT_EQ(sparkline({0, 0, 1, 1}, 2), "▁█");
  EXPECT_NE(text.find("recipe keys that differ between the runs"), std::string::npos);
}

// The stage-by-stage table of a pipeline: a base row from the first stage's step-0 measurements,
// then each stage's last eval metrics, repetition ratio and (DPO) held-out reward accuracy; "–"
// where a stage measured nothing of a column; no table when nothing was measured.
TEST(Report, StageByStageTable) {
  TempDir tmp;
  const fs::path qs = tmp.path / "qs";
  auto write = [&](const std::string& stage, const std::vector<nlohmann::json>& records) {
    fs::create_directories(qs / stage);
    std::ofstream out(qs / stage / "metrics.jsonl");
    for (const auto& r : records) out << r.dump() << "\n";
  };
  write("pretrain", {{{"step", 5}, {"loss", 3.0}, {"time", 1000.0}}});
  write("sft_stage1", {{{"step", 0}, {"eval/heldout/exact_match", 0.0}, {"eval/heldout/repetition_ratio", 0.6}, {"time", 1100.0}},
                       {{"step", 10}, {"loss", 1.0}, {"time", 1101.0}},
                       {{"step", 10}, {"eval/heldout/exact_match", 0.99}, {"eval/heldout/repetition_ratio", 0.0}, {"time", 1102.0}}});
  write("sft_stage2", {{{"step", 4}, {"loss", 0.5}, {"repetition_ratio", 0.05}, {"time", 1200.0}}});
  write("dpo", {{{"step", 0}, {"val_rewards/accuracy", 0.0}, {"time", 1300.0}},
                {{"step", 8}, {"loss", 0.2}, {"rewards/accuracy", 1.0}, {"time", 1301.0}},
                {{"step", 8}, {"val_rewards/accuracy", 0.9167}, {"eval/heldout/exact_match", 0.98},
                 {"eval/heldout/repetition_ratio", 0.0}, {"time", 1302.0}}});
  std::ofstream(qs / "pipeline.json") << R"({"name": "qs", "stages": [{"name": "init", "kind": "init"},
    {"name": "pretrain", "kind": "sft"}, {"name": "sft_stage1", "kind": "sft"}, {"name": "sft_stage2", "kind": "sft"},
    {"name": "dpo", "kind": "dpo"}, {"name": "chat", "kind": "export"}]})";
  const ReportInput input = read_report_input(qs);
  const std::string table = stage_table(input);
  EXPECT_EQ(table,
            "stage by stage (the recipes' monitors on each stage's final model; reward accuracy on held-out pairs)\n"
            "  stage                      heldout/exact_match   heldout/repetition_ratio   repetition ratio   reward accuracy\n"
            "  base (before sft_stage1)   0                     0.6                        –                  –\n"
            "  sft_stage1                 0.99                  0                          –                  –\n"
            "  sft_stage2                 –                     –                          0.05               –\n"
            "  dpo                        0.98                  0                          –                  0.9167\n")
      << table;
  EXPECT_NE(text_report({input}).find(table), std::string::npos);
  // A pipeline whose stages measured nothing: no table.
  fs::remove_all(qs / "sft_stage1");
  fs::remove_all(qs / "sft_stage2");
  fs::remove_all(qs / "dpo");
  EXPECT_EQ(stage_table(read_report_input(qs)), "");
}

// Bad arguments: one line on stderr naming the argument, exit 1, no page written.
TEST(Report, BadArgumentsGiveOneLineErrors) {
  if (cli().empty()) GTEST_SKIP() << "a core-only (sanitizer) build has no dsalign executable";
  TempDir tmp;
  tmp.write("file.txt", "x");
  fs::create_directories(tmp.path / "empty");
  write_run(tmp.path / "run", "sft", 3, 1.0, 0);
  struct Case {
    std::string args, expected;
  } cases[] = {
      {(tmp.path / "missing").string(), "missing: no such run directory"},
      {(tmp.path / "file.txt").string(), "file.txt: not a directory"},
      {(tmp.path / "empty").string(), "empty: no metrics.jsonl here or in its sub-directories"},
      {(tmp.path / "run").string() + " --out " + (tmp.path / "file.txt" / "r.html").string(), "file.txt is a file, not a directory"},
      {(tmp.path / "run").string() + " --out " + tmp.path.string(), "is a directory"},
      {"", "the option '--run' is required"},
  };
  for (const Case& c : cases) {
    const CommandResult r = run("cd " + tmp.path.string() + " && " + cli() + " report " + c.args);
    EXPECT_EQ(r.status, 1) << c.args << "\n" << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << c.args << "\n" << r.out;
    EXPECT_NE(r.out.find(c.expected), std::string::npos) << c.args << "\n" << r.out;
  }
  EXPECT_FALSE(fs::exists(tmp.path / "report.html"));
  // A directory that does not exist yet is made.
  const CommandResult made = run(cli() + " report " + (tmp.path / "run").string() + " --out " + (tmp.path / "new" / "r.html").string());
  EXPECT_EQ(made.status, 0) << made.out;
  EXPECT_TRUE(fs::exists(tmp.path / "new" / "r.html"));
  const CommandResult ok = run(cli() + " report " + (tmp.path / "run").string() + " --text");
  EXPECT_EQ(ok.status, 0) << ok.out;
  EXPECT_NE(ok.out.find("final loss"), std::string::npos) << ok.out;
}

// The page in a real browser: every primary chart drawn, the run names there, no console
// errors; the screenshot is kept in the build directory (report_chromium.png) to look at.
TEST(Report, RendersInHeadlessChromium) {
  if (cli().empty()) GTEST_SKIP() << "a core-only (sanitizer) build has no dsalign executable";
  const CommandResult which = run("command -v chromium");
  if (which.status != 0) GTEST_SKIP() << "chromium is not installed (scripts/setup.sh installs Debian's chromium)";
  TempDir tmp;
  write_pipeline(tmp.path / "qs");
  // A run whose name would end the page's data <script> early if it reached it raw.
  write_run(tmp.path / "x<!--<script>", "sft", 12, 5.0, 5000);
  const fs::path page = tmp.path / "report.html";
  const CommandResult made = run(cli() + " report " + (tmp.path / "qs").string() + " '" + (tmp.path / "x<!--<script>").string() +
                          "' --out " + page.string());
  ASSERT_EQ(made.status, 0) << made.out;
  const std::string chromium = "timeout 120 chromium --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars "
                               "--user-data-dir=" + (tmp.path / "profile").string() +
                               " --enable-logging=stderr --v=0 --virtual-time-budget=2000 ";
  const fs::path dom = tmp.path / "dom.html";
  const CommandResult dumped = run(chromium + "--dump-dom file://" + page.string() + " > " + dom.string());
  ASSERT_EQ(dumped.status, 0) << dumped.out;
  const std::string rendered = read_text_file(dom);
  // Primary charts: train/loss, val/loss, repetition/ratio, dpo/rewards/margin,
  // dpo/rewards/accuracy, val/rewards/accuracy, train/lr, train/grad_norm, perf/tokens_per_s,
  // memory/peak_bytes, and eval/greet/acc.
  EXPECT_NE(rendered.find("data-charts-rendered=\"11\""), std::string::npos) << rendered.substr(0, 2000);
  for (const char* tag : {"train/loss", "repetition/ratio", "dpo/rewards/margin", "eval/greet/acc"})
    EXPECT_NE(rendered.find("data-tag=\"" + std::string(tag) + "\""), std::string::npos) << tag;
  for (const char* name : {"qs/sft_stage1", "qs/sft_stage2", "qs/dpo", "x&lt;!--&lt;script&gt;"})
    EXPECT_NE(rendered.find(name), std::string::npos) << name;
  EXPECT_NE(rendered.find("<pre id=\"js-errors\"></pre>"), std::string::npos) << "errors on the page";
  EXPECT_EQ(dumped.out.find("CONSOLE"), std::string::npos) << "console messages:\n" << dumped.out;
  EXPECT_EQ(dumped.out.find("Uncaught"), std::string::npos) << dumped.out;

  const fs::path shot = fs::path(DSALIGN_BUILD_DIR) / "report_chromium.png";
  fs::remove(shot);
  const CommandResult screenshot =
      run(chromium + "--window-size=1400,1800 --screenshot=" + shot.string() + " file://" + page.string());
  ASSERT_EQ(screenshot.status, 0) << screenshot.out;
  ASSERT_TRUE(fs::exists(shot)) << screenshot.out;
  EXPECT_EQ(read_text_file(shot).substr(1, 3), "PNG");
  EXPECT_GT(fs::file_size(shot), 20000u) << "an empty page?";
}
