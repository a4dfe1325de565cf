// JSONL records: SFT, preference and prompt files (data/records, eval/repetition), each read
// both stopping at the first bad line and skipping bad lines.
#include "data/records.h"
#include "eval/repetition.h"
#include "fuzz/fuzz_input.h"

using namespace dsalign;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto file = fuzz::write_file("records.jsonl", fuzz::as_string(data, size));
  for (OnError on_error : {OnError::fail, OnError::skip}) {
    fuzz::accept_errors([&] {
      ReadReport report;
      read_sft_jsonl(file, on_error, report);
    });
    fuzz::accept_errors([&] {
      ReadReport report;
      read_preference_jsonl(file, on_error, report);
    });
  }
  fuzz::accept_errors([&] { read_eval_prompts(file, 0); });
  return 0;
}
