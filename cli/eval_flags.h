// What the scored `dsalign eval` commands share: the model, scoring and report flags, and
// writing the JSONL report.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "eval/scored_tasks.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign::cli {

// What every scored task takes besides its data.
struct ScoredFlags {
  std::string model_dir, device = "cpu", dtype, out;
  int64_t limit = 0;
  ScoringOptions scoring;

  // `shared_contexts`: the command scores choices (loglik, mc, bpb), so --share-context-from applies.
  void add_to(po::options_description& options, const std::string& default_out, bool shared_contexts = true) {
    out = default_out;
    options.add_options()
        ("model", po::value(&model_dir)->required(), "a Hugging Face directory (weights and tokenizer files)")
        ("device", po::value(&device)->default_value(device), "cpu | cuda[:N]")
        ("dtype", po::value(&dtype), "fp32 | bf16 (default: bf16 on CUDA, fp32 on CPU)")
        ("batch-size", po::value(&scoring.batch_size)->default_value(scoring.batch_size), "sequences per forward")
        ("max-length", po::value(&scoring.max_length)->default_value(0), "tokens the model reads (0: its max_position_embeddings)")
        ("limit", po::value(&limit)->default_value(0), "the first N records only (0: all)")
        ("out", po::value(&out)->default_value(out), "the report (JSONL), written whole at the end");
    if (shared_contexts)
      options.add_options()("share-context-from", po::value(&scoring.min_shared_context)->default_value(scoring.min_shared_context),
                            "choices whose common context has this many tokens or more are scored in one row (0: never)");
  }
  void validate() const {
    if (scoring.batch_size < 1) fail("--batch-size must be at least 1, got ", scoring.batch_size);
    if (scoring.max_length < 0) fail("--max-length must be 0 or positive, got ", scoring.max_length);
    if (scoring.min_shared_context < 0) fail("--share-context-from must be 0 (never) or positive, got ", scoring.min_shared_context);
    if (limit < 0) fail("--limit must be 0 or positive, got ", limit);
    check_output_path(out, "--out", OutputKind::file);
  }
};

inline void write_report(const std::string& out, const std::vector<nlohmann::json>& lines) {
  std::string text;
  for (const auto& line : lines) text += line.dump() + "\n";
  write_file_atomic(out, text);
}

}  // namespace dsalign::cli
