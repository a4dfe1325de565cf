// config.json and, after a NUL byte in the input, generation_config.json (model/config).
#include "fuzz/fuzz_input.h"
#include "model/config.h"

using namespace dsalign;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text = fuzz::as_string(data, size);
  const size_t nul = text.find('\0');
  const auto dir = fuzz::scratch_dir() / "model_config";
  std::filesystem::create_directories(dir);
  fuzz::write_file("model_config/config.json", text.substr(0, nul));
  std::filesystem::remove(dir / "generation_config.json");
  if (nul != std::string::npos) fuzz::write_file("model_config/generation_config.json", text.substr(nul + 1));
  fuzz::accept_errors([&] {
    const ModelConfig c = load_model_config(dir);
    validate(c, "fuzz");
    to_hf_config_json(c, "bfloat16");
    to_generation_config_json(c);
  });
  return 0;
}
