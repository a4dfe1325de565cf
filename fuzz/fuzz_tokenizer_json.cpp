// tokenizer.json loading, then encoding and decoding a fixed text with what loaded.
#include "data/tokenizer.h"
#include "fuzz/fuzz_input.h"

using namespace dsalign;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto dir = fuzz::scratch_dir() / "tokenizer_json";
  std::filesystem::create_directories(dir);
  fuzz::write_file("tokenizer_json/tokenizer.json", fuzz::as_string(data, size));
  fuzz::accept_errors([&] {
    Tokenizer tokenizer = Tokenizer::load(dir);
    const std::vector<int32_t> ids = tokenizer.encode("Hello, wörld! 123 def f(x):\n  return 二倍 <|EOT|>", true);
    tokenizer.decode(ids, false);
    tokenizer.decode(ids, true);
  });
  return 0;
}
