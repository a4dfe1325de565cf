// dsalign eval suite <suite.yaml>: every task of a suite on one model, one table.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/chat_model.h"
#include "cli/commands.h"
#include "eval/eval_suite.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign::cli {

int eval_suite_command(const Args& args) {
  po::options_description options("options");
  std::string command, suite_file, model_dir, device = "cpu", dtype, out = "suite.jsonl";
  SuiteRunOptions run;
  int64_t batch_size = 0;
  options.add_options()
      ("command", po::value(&command)->required(), "suite")
      ("suite", po::value(&suite_file)->required(), "the suite (YAML; e.g. recipes/eval/quick.yaml)")
      ("model", po::value(&model_dir)->required(), "a Hugging Face directory or a training checkpoint (with tokenizer files)")
      ("device", po::value(&device)->default_value(device), "cpu | cuda[:N]")
      ("dtype", po::value(&dtype), "fp32 | bf16 (default: bf16 on CUDA, fp32 on CPU)")
      ("batch-size", po::value(&batch_size)->default_value(0), "sequences per forward (0: the suite's)")
      ("limit", po::value(&run.limit)->default_value(0), "at most N examples per task (0: the suite's)")
      ("python", po::value(&run.python)->default_value(run.python), "humaneval: the Python that runs the tests")
      ("out", po::value(&out)->default_value(out), "the report (JSONL: one line per task with every metric)");
  po::positional_options_description positional;
  positional.add("command", 1).add("suite", 1);
  po::variables_map vm;
  if (!parse(args, "dsalign eval suite <suite.yaml> --model <dir> [options]\n\n"
                   "Runs each task of the suite (multiple choice, bits per byte, generation; see\n"
                   "recipes/eval/deepseek-llm.yaml for the DeepSeek LLM paper's suite, recipes/eval/quick.yaml for\n"
                   "a one-minute CPU check) and prints one table with each task's chosen metric. A humaneval task\n"
                   "EXECUTES MODEL-WRITTEN CODE in a sandbox (dsalign eval gen --help).",
             options, positional, vm))
    return 0;
  if (batch_size < 0) fail("--batch-size must be 0 or positive, got ", batch_size);
  if (run.limit < 0) fail("--limit must be 0 or positive, got ", run.limit);
  check_output_path(out, "--out", OutputKind::file);
  EvalSuite suite = read_eval_suite(suite_file);
  if (batch_size > 0) suite.batch_size = batch_size;
  ChatModel m = load_chat_model(model_dir, device, dtype, "auto");
  const std::vector<SuiteTaskResult> results = run_eval_suite(m.model, m.tokenizer, suite, run);
  std::string text;
  for (const SuiteTaskResult& r : results) {
    const nlohmann::json line = {{"suite", suite.name}, {"task", r.name},          {"method", r.method},
                                 {"metric", r.metric},  {"value", r.value},        {"stderr", r.stderr_},
                                 {"examples", r.examples}, {"seconds", r.seconds}, {"metrics", r.metrics}};
    text += line.dump() + "\n";
  }
  write_file_atomic(out, text);
  std::printf("%s%s on %s; report: %s\n", suite_table(results).c_str(), suite.name.c_str(), model_dir.c_str(), out.c_str());
  return 0;
}

}  // namespace dsalign::cli
