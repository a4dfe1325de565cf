// The CLI battery: every command, every file argument (on the command line and the paths inside
// recipes), every way a user's file can be wrong: missing, a directory where a file belongs (and
// the reverse), empty, binary, unreadable, a 4,096-character path, invalid UTF-8 in the path and
// in the content, and outputs that cannot be written (under a regular file, in a read-only
// directory, too long, a directory where a file goes). Each must end with exit code 1 and one
// line on stderr naming the path or the argument, and leave nothing behind in the output area.
//
// Permissions: the suite runs as root in CI, and root reads anything; the commands then run under
// setpriv with CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH dropped, so file modes apply to them.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "model/checkpoint.h"
#include "model/config.h"
#include "util/files.h"
#include "test_util.h"

using namespace dsalign;
using dsalign::testing::TempDir;

namespace {

enum class Role { input_file, input_dir, output_file, output_dir };

// One file argument of one command.
struct FileArg {
  std::string id;      // the test's name
  Role role;
  std::string args;    // the command line; "{}" is where the path goes
  std::string names;   // the argument or recipe key an error may name instead of the path
  std::string inner;   // input_dir: the file inside it to corrupt (binary, unreadable)
  std::string valid;   // input_dir: a valid directory of the fixture to copy before corrupting `inner`
  std::set<std::string> accepted = {};  // kinds that are valid input for this argument (exit 0)
};

void PrintTo(const FileArg& arg, std::ostream* out) { *out << arg.id; }

// Every command's file arguments. The fixture's valid files stand in for the other arguments;
// outputs go under out/, which every case must leave empty.
std::vector<FileArg> file_args() {
  const std::string model = " --model model", out = " --out out/report.jsonl";
  return {
      {"sft_recipe", Role::input_file, "sft {}", "recipe"},
      {"sft_model_path", Role::input_dir, "sft sft.yaml model.path={}", "model.path", "config.json", "model"},
      {"sft_data_path", Role::input_file, "sft sft.yaml data.sources.0.path={}", "data.sources"},
      {"sft_resume", Role::input_dir, "sft sft.yaml --resume {}", "--resume", "state.json"},
      {"sft_output_dir", Role::output_dir, "sft sft.yaml run.output_dir={}", "run.output_dir"},
      {"sft_cache_dir", Role::output_dir, "sft sft.yaml data.cache_dir={}", "data.cache_dir"},
      {"dpo_recipe", Role::input_file, "dpo {}", "recipe"},
      {"dpo_model_path", Role::input_dir, "dpo dpo.yaml model.path={}", "model.path", "config.json", "model"},
      {"dpo_reference_path", Role::input_dir, "dpo dpo.yaml dpo.reference.path={}", "dpo.reference.path", "config.json", "model"},
      {"dpo_data_path", Role::input_file, "dpo dpo.yaml data.sources.0.path={}", "data.sources"},
      {"dpo_output_dir", Role::output_dir, "dpo dpo.yaml run.output_dir={}", "run.output_dir"},
      {"run_pipeline", Role::input_file, "run {}", "recipe"},
      {"run_stage_recipe", Role::input_file, "run pipeline.yaml stages.0.sft={}", "stages[0].sft"},
      {"run_output_dir", Role::output_dir, "run pipeline.yaml run.output_dir={}", "run.output_dir"},
      {"eval_repetition_model", Role::input_dir, "eval repetition --model {} --prompts prompts.jsonl" + out, "--model",
       "config.json", "model"},
      {"eval_repetition_prompts", Role::input_file, "eval repetition" + model + " --prompts {}" + out, "--prompts"},
      {"eval_repetition_out", Role::output_file, "eval repetition" + model + " --prompts prompts.jsonl --out {}", "--out"},
      {"eval_loglik_requests", Role::input_file, "eval loglik" + model + " --requests {}" + out, "--requests"},
      {"eval_loglik_out", Role::output_file, "eval loglik" + model + " --requests requests.jsonl --out {}", "--out"},
      {"eval_mc_model", Role::input_dir, "eval mc --model {} --data mc.jsonl" + out, "--model", "tokenizer.json", "model"},
      {"eval_mc_data", Role::input_file, "eval mc" + model + " --data {}" + out, "--data"},
      {"eval_mc_out", Role::output_file, "eval mc" + model + " --data mc.jsonl --out {}", "--out"},
      {"eval_bpb_text", Role::input_file, "eval bpb" + model + " --text {}" + out, "--text"},
      {"eval_bpb_out", Role::output_file, "eval bpb" + model + " --text docs.jsonl --out {}", "--out"},
      {"eval_gen_data", Role::input_file, "eval gen --task gsm8k" + model + " --data {} --max-new-tokens 4" + out, "--data"},
      {"eval_gen_out", Role::output_file, "eval gen --task gsm8k" + model + " --data gsm8k.jsonl --max-new-tokens 4 --out {}",
       "--out"},
      {"eval_suite_suite", Role::input_file, "eval suite {}" + model + out, "suite"},
      {"eval_suite_model", Role::input_dir, "eval suite suite.yaml --model {}" + out, "--model", "config.json", "model"},
      {"eval_suite_out", Role::output_file, "eval suite suite.yaml" + model + " --out {}", "--out"},
      {"generate_model", Role::input_dir, "generate --model {} --prompt Hi --max-new-tokens 2", "--model", "config.json", "model"},
      {"export_source", Role::input_dir, "export {} out/chat", "source", "config.json", "model"},
      {"export_out", Role::output_dir, "export model {}", "out"},
      {"init_config", Role::input_file, "init {} out/init", "source"},
      {"init_out", Role::output_dir, "init tiny {}", "out"},
      {"inspect_source", Role::input_dir, "inspect {} --load", "source", "config.json", "model"},
      {"forward_model", Role::input_dir, "forward --model {} --ids 1,2 --out out/logits.safetensors", "--model", "config.json",
       "model"},
      {"forward_ids", Role::input_file, "forward" + model + " --ids {} --out out/logits.safetensors", "--ids"},
      {"forward_out", Role::output_file, "forward" + model + " --ids 1,2 --out {}", "--out"},
      {"tokenize_tokenizer", Role::input_dir, "tokenize --tokenizer {} text.txt", "--tokenizer", "tokenizer.json", "model"},
      // An empty text has no tokens: that is an answer, not an error.
      {"tokenize_input", Role::input_file, "tokenize --tokenizer model {}", "input", "", "", {"empty"}},
      {"report_run", Role::input_dir, "report {} --out out/report.html", "run", "metrics.jsonl", "run"},
      {"report_out", Role::output_file, "report run --out {}", "--out"},
  };
}

// Bad values of each role.
std::vector<std::string> kinds(Role role) {
  switch (role) {
    case Role::input_file:
      return {"missing", "directory", "empty", "binary", "unreadable", "long_path", "utf8_path", "utf8_content"};
    case Role::input_dir:
      return {"missing", "file", "empty_dir", "binary_inner", "unreadable_dir", "unreadable_inner", "long_path", "utf8_path"};
    case Role::output_file:
      return {"under_file", "read_only", "long_path", "directory"};
    case Role::output_dir:
      return {"under_file", "read_only", "long_path", "file"};
  }
  return {};
}

const std::string kBinary("\x00\x01\xff\xfePK\x03\x04\x89HDF\r\n\x1a\n\x00\x80\xc0\xc1\xf5", 21);

// The valid files the commands need, in `dir`.
void write_fixture(const fs::path& dir) {
  auto write = [&](const std::string& name, const std::string& text) { std::ofstream(dir / name, std::ios::binary) << text; };
  SaveOptions save;
  save.dtype = torch::kFloat32;
  ModelConfig c = *model_preset("tiny-llm");
  c.max_position_embeddings = 96;
  init_checkpoint(c, 0, dir / "model", save);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    fs::copy_file(fs::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers/deepseek-llm" / f, dir / "model" / f);
  std::string data, pairs;
  for (int i = 0; i < 16; ++i) {
    const std::string name = std::string(1, static_cast<char>('A' + i)) + "nn";
    data += R"({"prompt": "Greet )" + name + R"(.", "response": "Hello, )" + name + R"(!"})" "\n";
    pairs += R"({"prompt": "Greet )" + name + R"(.", "chosen": "Hello, )" + name + R"(!", "rejected": "Bye."})" "\n";
  }
  write("data.jsonl", data);
  write("pairs.jsonl", pairs);
  const std::string train = "train: {micro_batch_size: 2, global_batch_size: 2, lr: 0.001, max_steps: 1, schedule: constant}\n";
  write("sft.yaml", "run: {name: s, output_dir: out/sft}\nmodel: {path: model}\n"
                    "data: {sources: [{path: data.jsonl}], max_seq_len: 48}\n" + train);
  write("dpo.yaml", "run: {name: d, output_dir: out/dpo}\nmodel: {path: model}\n"
                    "data: {sources: [{path: pairs.jsonl}], max_seq_len: 48}\n" + train + "dpo: {beta: 0.1}\n");
  write("pipeline.yaml", "run: {name: p, output_dir: out/pipeline}\nstages:\n  - {name: s, sft: sft.yaml}\n");
  write("prompts.jsonl", "{\"prompt\": \"Greet Ann.\"}\n");
  write("requests.jsonl", "{\"context\": \"2 + 2 =\", \"continuation\": \" 4\"}\n");
  write("mc.jsonl", "{\"query\": \"Pick one:\", \"choices\": [\"yes\", \"no\"], \"gold\": 1}\n");
  write("docs.jsonl", "{\"text\": \"Some text.\"}\n");
  write("gsm8k.jsonl", "{\"prompt\": \"Question: 2 + 2?\\nAnswer:\", \"answer\": \"4\"}\n");
  write("suite.yaml", "suite: {name: s, data_dir: .}\ntasks:\n  - {name: pick, method: mc, data: mc.jsonl}\n");
  write("text.txt", "Hello there.\n");
  fs::create_directories(dir / "run");
  std::ofstream(dir / "run" / "config.yaml") << "run: {name: r, output_dir: run}\n";
  std::ofstream(dir / "run" / "metrics.jsonl") << "{\"step\": 1, \"loss\": 2.5, \"time\": 0.5}\n";
  fs::create_directories(dir / "out");
}

// A file of the same kind with invalid UTF-8 in a string where the format allows text.
std::string invalid_utf8_content(const std::string& id) {
  const std::string bad = "\xff\xfe\xc3";
  if (id.find("recipe") != std::string::npos || id.find("pipeline") != std::string::npos || id.find("suite_suite") != std::string::npos)
    return "run: {name: " + bad + "}\n";
  if (id == "forward_ids") return "1," + bad + "\n";
  if (id == "init_config") return "{\"model_type\": \"" + bad + "\"}\n";
  if (id == "tokenize_input" || id == "eval_bpb_text") return "text " + bad + "\n";
  return "{\"prompt\": \"" + bad + "\", \"text\": \"" + bad + "\", \"context\": \"" + bad + "\"}\n";
}

// A path of exactly 4,096 characters under `dir` (components of 200, below NAME_MAX).
std::string long_path(const fs::path& dir) {
  std::string p = dir.string();
  while (p.size() + 220 < 4096) p += "/" + std::string(200, 'L');
  p += "/" + std::string(4096 - p.size() - 1, 'F');
  return p;
}

// Everything under `dir`, relative, for before/after comparisons.
std::set<std::string> listing(const fs::path& dir) {
  std::set<std::string> out;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    out.insert(fs::relative(it->path(), dir).string());
  return out;
}

struct Outcome {
  int status = 0;
  std::string err;
};

// Runs the CLI in `cwd`; stdout is discarded.
Outcome run_cli(const fs::path& cwd, const std::string& args) {
  const std::string drop = ::geteuid() == 0 ? "setpriv --bounding-set=-dac_override,-dac_read_search " : "";
  const fs::path err = cwd / "stderr.txt";
  const std::string command = "cd '" + cwd.string() + "' && timeout 120 " + drop + DSALIGN_CLI + " " + args + " > /dev/null 2> '" +
                              err.string() + "'";
  const int status = std::system(command.c_str());
  Outcome o;
  o.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  o.err = read_text_file(err);
  fs::remove(err);
  return o;
}

// The path one kind stands for (creating what it needs under `dir/case`); "" to skip.
std::string prepare(const FileArg& arg, const std::string& kind, const fs::path& dir) {
  const fs::path c = dir / "case";
  fs::remove_all(c);
  fs::create_directories(c);
  auto file = [&](const std::string& name, const std::string& text) {
    std::ofstream(c / name, std::ios::binary) << text;
    return (c / name).string();
  };
  const bool input = arg.role == Role::input_file || arg.role == Role::input_dir;
  if (kind == "missing") return (c / "missing").string();
  if (kind == "long_path") return input ? long_path(c) : long_path(dir / "out");
  if (kind == "utf8_path") return (c / "bad\xff\xfe").string();
  if (kind == "directory") {
    if (!input) {
      fs::create_directories(dir / "out" / "adir");
      return (dir / "out" / "adir").string();
    }
    fs::create_directories(c / "adir");
    return (c / "adir").string();
  }
  if (kind == "empty") return file("empty", "");
  if (kind == "binary") return file("binary", kBinary);
  if (kind == "utf8_content") return file("utf8", invalid_utf8_content(arg.id));
  if (kind == "unreadable") {
    const std::string p = file("unreadable", "{\"prompt\": \"x\"}\n");
    ::chmod(p.c_str(), 0);
    return p;
  }
  if (kind == "file") {
    if (!input) {
      std::ofstream(dir / "out" / "afile") << "x";
      return (dir / "out" / "afile").string();
    }
    return file("afile", "not a directory\n");
  }
  if (kind == "empty_dir") {
    fs::create_directories(c / "empty");
    return (c / "empty").string();
  }
  if (kind == "unreadable_dir" || kind == "binary_inner" || kind == "unreadable_inner") {
    const fs::path d = c / "d";
    if (!arg.valid.empty()) fs::copy(dir / arg.valid, d, fs::copy_options::recursive);
    fs::create_directories(d);
    std::ofstream(d / arg.inner, std::ios::binary | std::ios::trunc) << (kind == "binary_inner" ? kBinary : "{}");
    if (kind == "unreadable_inner") ::chmod((d / arg.inner).c_str(), 0);
    if (kind == "unreadable_dir") ::chmod(d.c_str(), 0);
    return d.string();
  }
  if (kind == "under_file") {
    std::ofstream(dir / "out" / "plain") << "x";
    return (dir / "out" / "plain" / "sub").string();
  }
  if (kind == "read_only") {
    fs::create_directories(dir / "out" / "ro");
    ::chmod((dir / "out" / "ro").c_str(), 0555);
    return (dir / "out" / "ro" / "sub").string();
  }
  ADD_FAILURE() << "unknown kind " << kind;
  return "";
}

class CliBattery : public ::testing::TestWithParam<FileArg> {};

}  // namespace

TEST_P(CliBattery, BadFilesAreOneLineErrorsLeavingNothing) {
  const FileArg& arg = GetParam();
  TempDir tmp;
  write_fixture(tmp.path);
  const std::string command = arg.args.substr(0, arg.args.find(' '));
  for (const std::string& kind : kinds(arg.role)) {
    SCOPED_TRACE(arg.id + " / " + kind);
    const std::set<std::string> before = listing(tmp.path / "out");
    const std::string path = prepare(arg, kind, tmp.path);
    std::string args = arg.args;
    args.replace(args.find("{}"), 2, "'" + path + "'");
    // What the output area held before, plus the obstacle this kind put there.
    std::set<std::string> expected = before;
    for (const std::string& p : listing(tmp.path / "out"))
      if (p == "plain" || p == "ro" || p == "adir" || p == "afile") expected.insert(p);
    const Outcome o = run_cli(tmp.path, args);
    fs::permissions(tmp.path / "out", fs::perms::owner_all);
    if (fs::exists(tmp.path / "out" / "ro")) ::chmod((tmp.path / "out" / "ro").c_str(), 0755);
    if (arg.accepted.count(kind)) {
      EXPECT_EQ(o.status, 0) << o.err;
    } else {
      EXPECT_EQ(o.status, 1) << o.err;
      EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
      EXPECT_EQ(o.err.rfind("dsalign " + command + ": error: ", 0), 0u) << o.err;
      const std::string named = path.substr(0, std::min<size_t>(path.size(), 150));
      EXPECT_TRUE(o.err.find(named) != std::string::npos || o.err.find(arg.names) != std::string::npos)
          << "names neither the path nor " << arg.names << ": " << o.err;
      EXPECT_EQ(listing(tmp.path / "out"), expected) << "left output behind; stderr: " << o.err;
    }
    // Back to a clean output area for the next kind.
    for (const auto& e : fs::directory_iterator(tmp.path / "out")) {
      ::chmod(e.path().c_str(), 0755);
      fs::remove_all(e.path());
    }
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(tmp.path / "case", ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec))
      ::chmod(it->path().c_str(), 0755);
  }
}

INSTANTIATE_TEST_SUITE_P(EveryFileArgument, CliBattery, ::testing::ValuesIn(file_args()),
                         [](const ::testing::TestParamInfo<FileArg>& info) { return info.param.id; });
