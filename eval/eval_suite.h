// An evaluation suite: a YAML list of tasks run on one model, one table out (`dsalign eval suite`,
// and `monitor.eval` during training).
//
//   suite:
//     name: quick
//     data_dir: quick            # where relative `data` paths point (relative: to this file;
//                                # "~/" is $HOME); default $DSALIGN_EVAL_DATA, else ~/.cache/dsalign/eval
//     batch_size: 16             # default 16
//     max_length: 0              # tokens the model reads (0: its max_position_embeddings)
//   tasks:
//     - {name: arc_easy, method: mc, data: arc_easy.jsonl, unconditional: true, metric: acc_mutual_info}
//     - {name: mmlu, method: mc, data: mmlu.jsonl, shots: 0, limit: 100}
//     - {name: gsm8k, method: gen, task: gsm8k, data: gsm8k.jsonl, max_new_tokens: 256}
//     - {name: docs, method: bpb, data: docs.jsonl}
//
// method mc: `eval mc` (metric acc | acc_norm | acc_bytes | acc_mutual_info, default acc);
// `shots: N` takes the file's first N questions as worked examples (query, delimiter, gold
// choice, blank line) before every other question. bpb: `eval bpb` (bits_per_byte |
// byte_perplexity | word_perplexity). gen: `eval gen` (exact_match | exact_match_flexible for
// gsm8k and math, pass@1 for humaneval; shots are in the prompts).
#pragma once
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/tokenizer.h"
#include "eval/gen_tasks.h"
#include "model/decoder.h"

namespace dsalign {

class Dist;

enum class SuiteMethod { mc, bpb, gen };

struct SuiteTask {
  std::string name;
  SuiteMethod method = SuiteMethod::mc;
  std::filesystem::path data;  // resolved
  std::string metric;          // the one the table shows
  int64_t shots = 0, limit = 0;
  bool unconditional = false;  // mc
  GenTaskKind gen_task = GenTaskKind::gsm8k;
  int64_t max_new_tokens = 0;  // gen (0: the task's default)
};

struct EvalSuite {
  std::string name;
  std::filesystem::path file;
  int64_t batch_size = 16, max_length = 0;
  std::vector<SuiteTask> tasks;
};

// Reads and validates a suite; errors name the file and key. Data files must exist (the message
// points to scripts/fetch_eval_data.sh for the default data directory).
EvalSuite read_eval_suite(const std::filesystem::path& file);

struct SuiteTaskResult {
  std::string name, method, metric;
  double value = 0, stderr_ = 0;
  int64_t examples = 0;
  double seconds = 0;
  std::map<std::string, double> metrics;  // every metric the method reports
};

struct SuiteRunOptions {
  int64_t limit = 0;  // > 0: at most this many examples per task (after the shots)
  bool progress = true;
  std::string python = "python3";  // humaneval
  // Several ranks: each takes every world_size-th example of each task and the per-example
  // results are gathered, so every rank returns the whole suite's numbers.
  const Dist* dist = nullptr;
};

std::vector<SuiteTaskResult> run_eval_suite(CausalLM& model, const Tokenizer& tokenizer, const EvalSuite& suite,
                                            const SuiteRunOptions& options);

// The markdown table: | task | method | n | metric | value | stderr | seconds |.
std::string suite_table(const std::vector<SuiteTaskResult>& results);

}  // namespace dsalign
