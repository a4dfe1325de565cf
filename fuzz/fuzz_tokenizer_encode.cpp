// Encoding arbitrary bytes with the DeepSeek tokenizers (deepseek-coder for an even first byte,
// deepseek-llm for an odd one), then decoding: invalid UTF-8 must be an Error, never a crash.
// (Decoding is not the inverse of encoding: deepseek-coder maps some characters, "ü" among
// them, to tokens that decode to U+FFFD, as the tokenizers library does.)
#include <memory>

#include "data/tokenizer.h"
#include "fuzz/fuzz_input.h"

using namespace dsalign;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path assets = std::filesystem::path(DSALIGN_SOURCE_DIR) / "assets/tokenizers";
  static const Tokenizer coder = Tokenizer::load(assets / "deepseek-coder");
  static const Tokenizer llm = Tokenizer::load(assets / "deepseek-llm");
  if (size == 0) return 0;
  const Tokenizer& tokenizer = data[0] % 2 ? llm : coder;
  const std::string text = fuzz::as_string(data + 1, size - 1);
  fuzz::accept_errors([&] {
    const std::vector<int32_t> ids = tokenizer.encode(text, data[0] & 2);
    for (int32_t id : ids)
      if (id < 0 || id >= tokenizer.vocab_size()) __builtin_trap();
    tokenizer.decode(ids, data[0] & 4);
  });
  return 0;
}
