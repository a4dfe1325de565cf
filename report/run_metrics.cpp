#include "report/run_metrics.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>

#include "train/metric_tags.h"
#include "util/error.h"
#include "util/files.h"
#include "util/yaml_reader.h"

namespace dsalign {
namespace fs = std::filesystem;

namespace {

void flatten(const YAML::Node& node, const std::string& key, std::map<std::string, std::string>& out) {
  if (node.IsMap()) {
    for (const auto& kv : node) flatten(kv.second, key.empty() ? kv.first.Scalar() : key + "." + kv.first.Scalar(), out);
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) flatten(node[i], key + "[" + std::to_string(i) + "]", out);
  } else if (node.IsScalar()) {
    out[key] = node.Scalar();
  } else if (node.IsNull() && !key.empty()) {
    out[key] = "null";
  }
}

// The metrics lines that parse as JSON objects; the others are named in `warnings`.
std::vector<nlohmann::json> read_records(const fs::path& file, std::vector<std::string>& warnings) {
  std::vector<nlohmann::json> records;
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file.string(), ": cannot open for reading");
  std::string line;
  int64_t number = 0;
  bool torn_last = false;
  while (std::getline(in, line)) {
    ++number;
    torn_last = in.eof();  // the last line has no newline: a killed writer's
    if (line.empty()) continue;
    nlohmann::json record = nlohmann::json::parse(line, nullptr, false);
    // Steps outside [0, 2^53] are no step dsalign writes (and would overflow the report's axis).
    const bool bad_step = record.is_object() && record.contains("step") &&
                          (!record["step"].is_number_integer() || record["step"].get<double>() < 0 ||
                           record["step"].get<double>() > 9007199254740992.0);
    if (record.is_discarded() || !record.is_object() || bad_step) {
      warnings.push_back(file.string() + " line " + std::to_string(number) + ": " +
                         (torn_last ? "cut short (a killed run?)" : "not a metrics record") + "; skipped");
      continue;
    }
    records.push_back(std::move(record));
  }
  return records;
}

std::string data_sources(const std::map<std::string, std::string>& config) {
  std::string out;
  for (const auto& [key, value] : config)
    if (key.rfind("data.sources[", 0) == 0 && key.ends_with("].path")) out += (out.empty() ? "" : ", ") + value;
  return out;
}

RunSummary summarise(const RunMetrics& run) {
  RunSummary s;
  auto config = [&](const std::string& key, const std::string& fallback) {
    auto it = run.config.find(key);
    return it == run.config.end() ? fallback : it->second;
  };
  s.model = config("model.path", "?");
  s.data = data_sources(run.config);
  s.strategy = config("dist.strategy", "none");
  std::optional<double> first_time, last_time, train_accuracy, val_accuracy;
  for (const nlohmann::json& r : run.records) {
    auto number = [&](const char* key) -> std::optional<double> {
      auto it = r.find(key);
      return it != r.end() && it->is_number() ? std::optional<double>(it->get<double>()) : std::nullopt;
    };
    if (auto t = number("time")) {
      if (!first_time) first_time = t;
      last_time = t;
    }
    if (auto v = number("loss")) s.final_loss = v, s.steps = std::max(s.steps, r.value("step", int64_t{0}));
    if (auto v = number("val_loss")) s.final_val_loss = v;
    if (auto v = number("tokens_seen"); v && *v >= 0 && *v < 9e18) s.tokens = static_cast<int64_t>(*v);
    if (auto v = number("peak_memory_bytes")) s.peak_memory_bytes = std::max(s.peak_memory_bytes.value_or(0), *v);
    const bool at_start = number("step") == 0.0;
    if (auto v = number("repetition_ratio")) {
      if (!s.first_repetition_ratio) s.first_repetition_ratio = v;
      if (at_start) s.repetition_ratio_at_start = v;
      s.repetition_ratio = v;
    }
    if (auto v = number("rewards/accuracy")) train_accuracy = v;
    if (auto v = number("val_rewards/accuracy")) val_accuracy = v;
    for (const auto& [key, value] : r.items())
      if (key.rfind("eval/", 0) == 0 && value.is_number()) {
        s.eval[key.substr(5)] = value.get<double>();
        if (at_start) s.eval_at_start[key.substr(5)] = value.get<double>();
      }
  }
  // A run starts when it writes config.yaml, before its first record; a resumed run rewrites
  // config.yaml, so the earlier of the two.
  if (first_time && run.started) first_time = std::min(*first_time, *run.started);
  if (first_time && last_time) s.wall_seconds = *last_time - *first_time;
  s.reward_accuracy = val_accuracy ? val_accuracy : train_accuracy;
  return s;
}

// A pipeline's training stages in order: pipeline.json's list, else the sub-directories that
// hold metrics.jsonl, by the time of their first record (then by name).
std::vector<std::pair<std::string, fs::path>> pipeline_stages(const fs::path& dir, std::vector<std::string>& warnings) {
  std::vector<std::pair<std::string, fs::path>> stages;
  const fs::path listing = dir / "pipeline.json";
  if (is_existing_file(listing)) {
    std::ifstream in(listing);
    nlohmann::json p = nlohmann::json::parse(in, nullptr, false);
    if (!p.is_discarded() && p.contains("stages") && p["stages"].is_array()) {
      for (const auto& s : p["stages"]) {
        // A stage's name is a directory inside the pipeline's: nothing that leads elsewhere.
        if (!s.is_object() || !s.contains("name") || !s["name"].is_string()) continue;
        const std::string name = s["name"].get<std::string>();
        if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) continue;
        if (is_existing_file(dir / name / "metrics.jsonl")) stages.emplace_back(name, dir / name);
      }
      return stages;
    }
    warnings.push_back(listing.string() + ": not a pipeline listing; ordering its stages by time");
  }
  std::vector<std::tuple<double, std::string, fs::path>> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_existing_file(it->path() / "metrics.jsonl")) continue;
    double first_time = 0;
    std::ifstream in(it->path() / "metrics.jsonl");
    std::string line;
    if (std::getline(in, line)) {
      nlohmann::json r = nlohmann::json::parse(line, nullptr, false);
      if (!r.is_discarded() && r.is_object() && r.contains("time") && r["time"].is_number()) first_time = r["time"].get<double>();
    }
    found.emplace_back(first_time, it->path().filename().string(), it->path());
  }
  std::sort(found.begin(), found.end());
  for (auto& [time, name, path] : found) stages.emplace_back(name, path);
  return stages;
}

}  // namespace

std::map<std::string, std::string> flatten_config(const fs::path& file, std::vector<std::string>& warnings) {
  std::map<std::string, std::string> out;
  if (!is_existing_file(file)) return out;
  try {
    const YAML::Node root = YAML::Load(read_text_file(file));
    check_yaml_tree(root, file.string(), 20000);
    flatten(root, "", out);
  } catch (const YAML::Exception& e) {
    warnings.push_back(file.string() + ": not YAML (" + e.msg + "); no recipe shown");
    out.clear();
  } catch (const Error& e) {
    warnings.push_back(std::string(e.what()) + "; no recipe shown");
    out.clear();
  }
  return out;
}

RunMetrics read_run(const fs::path& dir, const std::string& name) {
  RunMetrics run;
  run.name = name;
  run.dir = dir;
  run.records = read_records(dir / "metrics.jsonl", run.warnings);
  if (run.records.empty()) run.warnings.push_back((dir / "metrics.jsonl").string() + ": no metrics records");
  for (const nlohmann::json& r : run.records) {
    const int64_t step = r.value("step", int64_t{0});
    for (const auto& [tag, value] : metric_scalars(r)) run.series[tag].push_back({step, value});
  }
  for (auto& [tag, points] : run.series)
    std::stable_sort(points.begin(), points.end(), [](const SeriesPoint& a, const SeriesPoint& b) { return a.step < b.step; });
  run.config = flatten_config(dir / "config.yaml", run.warnings);
  std::error_code ec;
  const auto written = fs::last_write_time(dir / "config.yaml", ec);
  if (!ec)
    run.started = std::chrono::duration<double>(std::chrono::file_clock::to_sys(written).time_since_epoch()).count();
  if (run.config.empty() && !is_existing_file(dir / "config.yaml"))
    run.warnings.push_back((dir / "config.yaml").string() + ": missing; no recipe shown");
  run.summary = summarise(run);
  return run;
}

ReportInput read_report_input(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) fail(dir.string(), ": no such run directory");
  if (!is_existing_directory(dir)) fail(dir.string(), ": not a directory (expected a run directory holding metrics.jsonl)");
  ReportInput input;
  input.dir = dir;
  // The directory's own name, also for "." or "runs/quickstart/".
  const fs::path absolute = fs::absolute(dir, ec).lexically_normal();
  input.name = absolute.filename().string();
  if (input.name.empty()) input.name = absolute.parent_path().filename().string();
  if (input.name.empty()) input.name = dir.string();
  if (is_existing_file(dir / "metrics.jsonl")) {
    input.runs.push_back(read_run(dir, input.name));
    // Torn lines are expected (a killed run); a file with no readable record is not a run's log.
    if (input.runs.back().records.empty())
      fail((dir / "metrics.jsonl").string(), ": no readable record (expected JSON lines written by dsalign sft or dpo)");
    return input;
  }
  std::vector<std::string> warnings;
  const auto stages = pipeline_stages(dir, warnings);
  if (stages.empty())
    fail(dir.string(), ": no metrics.jsonl here or in its sub-directories (expected a dsalign run or pipeline directory)");
  input.pipeline = true;
  for (const auto& [name, path] : stages) input.runs.push_back(read_run(path, input.name + "/" + name));
  input.runs.front().warnings.insert(input.runs.front().warnings.begin(), warnings.begin(), warnings.end());
  return input;
}

std::vector<std::string> differing_keys(const std::vector<const RunMetrics*>& runs) {
  std::set<std::string> keys;
  for (const RunMetrics* r : runs)
    for (const auto& [key, value] : r->config) keys.insert(key);
  std::vector<std::string> out;
  for (const std::string& key : keys) {
    std::set<std::string> values;
    for (const RunMetrics* r : runs) {
      auto it = r->config.find(key);
      values.insert(it == r->config.end() ? std::string("\x01missing") : it->second);
    }
    if (values.size() > 1) out.push_back(key);
  }
  return out;
}

}  // namespace dsalign
