// tokenizer_config.json (data/tokenizer's read_tokenizer_config): special tokens, add_bos/eos,
// and the chat template's recognition and rendering (data/chat_template).
#include "data/chat_template.h"
#include "data/tokenizer.h"
#include "fuzz/fuzz_input.h"

using namespace dsalign;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = fuzz::as_string(data, size);
  const auto file = fuzz::write_file("tokenizer_config.json", text);
  fuzz::accept_errors([&] {
    const TokenizerSettings settings = read_tokenizer_config(file);
    if (auto format = recognise_chat_template(settings.chat_template))
      render_chat(*format, {{"system", "Be brief."}, {"user", "Greet Bob."}, {"assistant", "Hello, Bob!"}},
                  settings.bos_token, settings.eos_token, true);
  });
  fuzz::accept_errors([&] { recognise_chat_template(text); });
  return 0;
}
