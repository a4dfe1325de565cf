// The input files of `dsalign eval loglik | mc | bpb`, read once into typed records; a bad line
// is an error naming file:line and what was expected.
//   loglik  JSONL {"context": str, "continuation": str}
//   mc      JSONL {"query": str, "choices": [str, ...], "gold": int, "unconditional_context"?: str,
//                  "target_delimiter"?: str (default " ")}; partial scoring (WinoGrande) instead:
//           {"contexts": [str, ...], "continuation": str, "choices": [str, ...], "gold": int}, choice c
//           scored as (contexts[c], continuation) and "choices" naming the options (acc_norm's lengths)
//   bpb     JSONL {"text": str} per document, or a .txt file (one document)
//   gen     JSONL {"id"?: str, "prompt": str, "answer": str} (gsm8k, math: the gold answer), or
//           {"id"?: str, "prompt": str, "test": str, "entry_point": str} (humaneval)
#pragma once
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace dsalign {

struct LoglikRequest {
  std::string context, continuation;
};

struct McQuestion {
  std::string query;
  std::vector<std::string> choices;
  int64_t gold = 0;
  std::string target_delimiter = " ";
  std::optional<std::string> unconditional_context;  // the file's; --unconditional uses "" otherwise
  // Partial scoring: choice c is (contexts[c], continuation), as lm-eval scores WinoGrande.
  std::vector<std::string> contexts;
  std::string continuation;
};

struct GenProblem {
  std::string id;      // the record's "id" ("task_id" also read), else its line number
  std::string prompt;  // everything the model reads, shots included
  std::string answer;  // gsm8k, math
  std::string test, entry_point;  // humaneval
};

// Calls `record(object, "file:line")` for each non-blank line of a JSONL file until `limit` (> 0)
// records were taken; a line that is not a JSON object is an error naming file:line.
void for_each_jsonl_object(const std::filesystem::path& path, int64_t limit,
                           const std::function<void(const nlohmann::json&, const std::string&)>& record);

// `limit` > 0 keeps the first `limit` records.
std::vector<LoglikRequest> read_loglik_requests(const std::filesystem::path& path, int64_t limit);
std::vector<McQuestion> read_mc_questions(const std::filesystem::path& path, int64_t limit);
// `code_tests`: records carry "test" and "entry_point" (humaneval), else "answer".
std::vector<GenProblem> read_gen_problems(const std::filesystem::path& path, bool code_tests, int64_t limit);
std::vector<std::string> read_documents(const std::filesystem::path& path, int64_t limit);

}  // namespace dsalign
