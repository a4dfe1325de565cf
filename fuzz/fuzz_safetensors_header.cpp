// The safetensors header and tensor table (model/safetensors_header).
#include "fuzz/fuzz_input.h"
#include "model/safetensors_header.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  dsalign::fuzz::accept_errors([&] {
    for (const auto& e : dsalign::parse_safetensors_header(data, size, "fuzz.safetensors"))
      if (e.file_offset + (e.end - e.begin) > size) __builtin_trap();  // an entry past the file was accepted
  });
  return 0;
}
