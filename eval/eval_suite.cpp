#include "eval/eval_suite.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "dist/dist.h"
#include "dist/shard_plan.h"
#include "eval/scored_tasks.h"
#include "train/recipe_file.h"
#include "train/recipe_sections.h"
#include "util/error.h"
#include "util/yaml_reader.h"

namespace dsalign {
namespace fs = std::filesystem;
namespace {

fs::path default_data_dir() {
  if (const char* dir = std::getenv("DSALIGN_EVAL_DATA"); dir && *dir) return dir;
  const char* home = std::getenv("HOME");
  return fs::path(home ? home : ".") / ".cache/dsalign/eval";
}

// "~/" is $HOME; other relative paths are the suite file's folder's.
fs::path resolve_dir(const std::string& dir, const fs::path& suite_file) {
  if (dir.rfind("~/", 0) == 0) {
    const char* home = std::getenv("HOME");
    return fs::path(home ? home : ".") / dir.substr(2);
  }
  return resolve_recipe_path(suite_file.parent_path(), dir);
}

const std::vector<std::string>& metrics_of(const SuiteTask& t) {
  static const std::vector<std::string> mc = {"acc", "acc_norm", "acc_bytes", "acc_mutual_info"};
  static const std::vector<std::string> bpb = {"bits_per_byte", "byte_perplexity", "word_perplexity"};
  static const std::vector<std::string> answers = {"exact_match", "exact_match_flexible"};
  static const std::vector<std::string> chat = {"exact_match", "exact_match_flexible", "repetition_ratio"};
  static const std::vector<std::string> code = {"pass@1"};
  if (t.method == SuiteMethod::mc) return mc;
  if (t.method == SuiteMethod::bpb) return bpb;
  if (t.gen_task == GenTaskKind::chat) return chat;
  return t.gen_task == GenTaskKind::humaneval ? code : answers;
}

SuiteTask read_task(YamlReader& r, const fs::path& data_dir, bool data_dir_given) {
  SuiteTask t;
  t.name = r.string("name", std::nullopt);
  const std::string method = r.choice("method", {"mc", "bpb", "gen"}, "mc");
  t.method = method == "mc" ? SuiteMethod::mc : method == "bpb" ? SuiteMethod::bpb : SuiteMethod::gen;
  const std::string data = r.string("data", std::nullopt);
  t.data = resolve_recipe_path(data_dir, data);
  std::error_code ec;
  if (!fs::is_regular_file(t.data, ec))
    r.error("data", t.data.string(), " is not a file",
            data_dir_given ? "" : " (scripts/fetch_eval_data.sh fetches the benchmark data into " + data_dir.string() + ")");
  t.limit = r.integer("limit", 0);
  if (t.limit < 0) r.error("limit", "must be 0 (all) or positive, got ", t.limit);
  if (t.method == SuiteMethod::mc) {
    t.shots = r.integer("shots", 0);
    if (t.shots < 0) r.error("shots", "must be 0 or positive, got ", t.shots);
    t.unconditional = r.boolean("unconditional", false);
  }
  if (t.method == SuiteMethod::gen) {
    t.gen_task = parse_gen_task(r.choice("task", {"gsm8k", "math", "humaneval", "chat"}, "gsm8k"));
    t.max_new_tokens = r.integer("max_new_tokens", 0);
    if (t.max_new_tokens < 0) r.error("max_new_tokens", "must be 0 (the task's default) or positive");
  }
  const std::vector<std::string>& metrics = metrics_of(t);
  t.metric = r.choice("metric", metrics, metrics.front());
  if (t.metric == "acc_mutual_info" && !t.unconditional) r.error("metric", "acc_mutual_info needs unconditional: true");
  r.finish();
  return t;
}

}  // namespace

EvalSuite read_eval_suite(const fs::path& file) {
  std::error_code ec;
  if (!fs::is_regular_file(file, ec)) fail(file.string(), ": no such suite file");
  const RecipeFile recipe = load_recipe(file, {});
  YamlReader root(recipe.root, "", file.string());
  EvalSuite suite;
  suite.file = file;
  YamlReader head = root.child("suite");
  suite.name = head.string("name", file.stem().string());
  const bool data_dir_given = head.has("data_dir");
  const fs::path data_dir = data_dir_given ? resolve_dir(head.string("data_dir", std::nullopt), file) : default_data_dir();
  suite.batch_size = head.integer("batch_size", 16);
  if (suite.batch_size < 1) head.error("batch_size", "must be at least 1, got ", suite.batch_size);
  suite.max_length = head.integer("max_length", 0);
  if (suite.max_length < 0) head.error("max_length", "must be 0 (the model's) or positive");
  head.finish();
  for (YamlReader& t : root.children("tasks")) suite.tasks.push_back(read_task(t, data_dir, data_dir_given));
  root.finish();
  if (suite.tasks.empty()) fail(file.string(), ": tasks: the suite has no tasks");
  return suite;
}

namespace {

// The file's first `shots` questions as worked examples before each of the others.
std::vector<McQuestion> with_shots(std::vector<McQuestion> questions, const SuiteTask& t) {
  if (t.shots == 0) return questions;
  if (static_cast<int64_t>(questions.size()) <= t.shots)
    fail(t.data.string(), ": ", questions.size(), " questions, not more than the ", t.shots, " shots");
  std::string prefix;
  for (int64_t i = 0; i < t.shots; ++i) {
    const McQuestion& q = questions[static_cast<size_t>(i)];
    if (!q.contexts.empty()) fail(t.data.string(), ": shots need questions with a query (not partial scoring)");
    prefix += q.query + q.target_delimiter + q.choices[static_cast<size_t>(q.gold)] + "\n\n";
  }
  questions.erase(questions.begin(), questions.begin() + t.shots);
  for (McQuestion& q : questions) q.query = prefix + q.query;
  return questions;
}

void set_primary(SuiteTaskResult& r, const MeanStderr& value, const char* name, const std::string& metric) {
  r.metrics[name] = value.mean;
  if (metric == name) {
    r.value = value.mean;
    r.stderr_ = value.stderr_;
  }
}

// This rank's examples: every world_size-th, dealt as rank_rows deals a step's rows.
template <typename T>
std::vector<T> my_share(const std::vector<T>& all, const Dist* dist) {
  if (!dist) return all;
  std::vector<T> mine;
  for (size_t i : rank_rows(0, all.size(), dist->world_size(), dist->rank())) mine.push_back(all[i]);
  return mine;
}

// Per-example result rows of this rank's share (in share order) -> every rank's, in example order.
std::vector<std::vector<double>> gather_rows(const std::vector<std::vector<double>>& mine, const Dist* dist) {
  if (!dist || dist->world_size() == 1) return mine;
  const auto world = static_cast<size_t>(dist->world_size());
  std::vector<std::vector<std::vector<double>>> parts;
  for (const std::string& text : dist->all_gather_strings(nlohmann::json(mine).dump(), "eval results"))
    parts.push_back(nlohmann::json::parse(text).get<std::vector<std::vector<double>>>());
  std::vector<std::vector<double>> all;
  for (size_t i = 0;; ++i) {
    const std::vector<std::vector<double>>& part = parts[i % world];
    if (i / world >= part.size()) break;
    all.push_back(part[i / world]);
  }
  return all;
}

std::vector<double> column(const std::vector<std::vector<double>>& rows, size_t c) {
  std::vector<double> out;
  for (const auto& r : rows) out.push_back(r[c]);
  return out;
}

SuiteTaskResult run_task(CausalLM& model, const Tokenizer& tokenizer, const EvalSuite& suite, const SuiteTask& t,
                         const SuiteRunOptions& options) {
  SuiteTaskResult r;
  r.name = t.name;
  r.metric = t.metric;
  r.method = t.method == SuiteMethod::mc ? "mc" : t.method == SuiteMethod::bpb ? "bpb" : gen_task_name(t.gen_task);
  int64_t limit = t.limit;
  if (options.limit > 0) limit = limit > 0 ? std::min(limit, options.limit) : options.limit;
  ScoringOptions scoring;
  scoring.batch_size = suite.batch_size;
  scoring.max_length = suite.max_length;
  scoring.progress = options.progress;
  std::vector<std::vector<double>> rows;  // per example of this rank's share
  if (t.method == SuiteMethod::mc) {
    const auto questions = with_shots(read_mc_questions(t.data, limit > 0 ? limit + t.shots : 0), t);
    const McReport report = run_multiple_choice(model, tokenizer, my_share(questions, options.dist), t.unconditional, scoring);
    for (const McResult& q : report.questions)
      rows.push_back({q.scores.acc, q.scores.acc_norm, q.scores.acc_bytes, q.scores.acc_mutual_info.value_or(0.0)});
    rows = gather_rows(rows, options.dist);
    r.examples = static_cast<int64_t>(rows.size());
    set_primary(r, mean_stderr(column(rows, 0)), "acc", t.metric);
    set_primary(r, mean_stderr(column(rows, 1)), "acc_norm", t.metric);
    set_primary(r, mean_stderr(column(rows, 2)), "acc_bytes", t.metric);
    if (t.unconditional) set_primary(r, mean_stderr(column(rows, 3)), "acc_mutual_info", t.metric);
  } else if (t.method == SuiteMethod::bpb) {
    const std::vector<std::string> documents = read_documents(t.data, limit);
    for (const BpbDocument& d : run_bits_per_byte(model, tokenizer, my_share(documents, options.dist), scoring).documents)
      rows.push_back({d.loglik, static_cast<double>(d.bytes), static_cast<double>(d.words)});
    rows = gather_rows(rows, options.dist);
    PerplexityTotals totals;
    for (const auto& d : rows) {
      totals.loglik += d[0];
      totals.bytes += static_cast<int64_t>(d[1]);
      totals.words += static_cast<int64_t>(d[2]);
    }
    r.examples = static_cast<int64_t>(rows.size());
    r.metrics = {{"bits_per_byte", totals.bits_per_byte()},
                 {"byte_perplexity", totals.byte_perplexity()},
                 {"word_perplexity", totals.word_perplexity()}};
    r.value = r.metrics[t.metric];
  } else {
    const std::vector<GenProblem> problems = read_gen_problems(t.data, t.gen_task == GenTaskKind::humaneval, limit);
    GenTaskOptions gen;
    gen.max_new_tokens = t.max_new_tokens;
    gen.batch_size = suite.batch_size;
    gen.max_length = suite.max_length;
    gen.progress = options.progress;
    gen.python = options.python;
    const GenReport report = run_generation_task(model, tokenizer, t.gen_task, my_share(problems, options.dist), gen);
    for (const GenSample& s : report.samples)
      rows.push_back({s.correct ? 1.0 : 0.0, s.correct_flexible ? 1.0 : 0.0, s.generated.repetitive ? 1.0 : 0.0});
    rows = gather_rows(rows, options.dist);
    r.examples = static_cast<int64_t>(rows.size());
    if (t.gen_task == GenTaskKind::humaneval) {
      set_primary(r, mean_stderr(column(rows, 0)), "pass@1", t.metric);
    } else {
      set_primary(r, mean_stderr(column(rows, 0)), "exact_match", t.metric);
      set_primary(r, mean_stderr(column(rows, 1)), "exact_match_flexible", t.metric);
      if (t.gen_task == GenTaskKind::chat) set_primary(r, mean_stderr(column(rows, 2)), "repetition_ratio", t.metric);
    }
  }
  return r;
}

}  // namespace

std::vector<SuiteTaskResult> run_eval_suite(CausalLM& model, const Tokenizer& tokenizer, const EvalSuite& suite,
                                            const SuiteRunOptions& options) {
  std::vector<SuiteTaskResult> results;
  for (const SuiteTask& t : suite.tasks) {
    const auto start = std::chrono::steady_clock::now();
    if (options.progress) std::fprintf(stderr, "[eval %s] %s\n", suite.name.c_str(), t.name.c_str());
    SuiteTaskResult r = run_task(model, tokenizer, suite, t, options);
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    results.push_back(std::move(r));
  }
  return results;
}

std::string suite_table(const std::vector<SuiteTaskResult>& results) {
  std::string out = "| task | method | n | metric | value | stderr | seconds |\n| --- | --- | ---: | --- | ---: | ---: | ---: |\n";
  char line[512];
  for (const SuiteTaskResult& r : results) {
    std::snprintf(line, sizeof line, "| %s | %s | %lld | %s | %.4f | %.4f | %.1f |\n", r.name.c_str(), r.method.c_str(),
                  static_cast<long long>(r.examples), r.metric.c_str(), r.value, r.stderr_, r.seconds);
    out += line;
  }
  return out;
}

}  // namespace dsalign
