// Token id lists: `--ids 1,2,3` and id files (data/id_list).
#include "data/id_list.h"
#include "fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = dsalign::fuzz::as_string(data, size);
  dsalign::fuzz::accept_errors([&] {
    for (const auto& row : dsalign::parse_id_rows(text, "fuzz", 102400))
      for (int64_t id : row)
        if (id < 0 || id >= 102400) __builtin_trap();
  });
  dsalign::fuzz::accept_errors([&] { dsalign::looks_like_id_list(text); });
  return 0;
}
