// The pre-tokenizers of a tokenizer.json (Sequence of Split / Digits / ByteLevel), run with PCRE2
// (JIT). Patterns are Oniguruma (Ruby syntax) in tokenizer.json; translate_pattern() adjusts the
// few escapes whose meaning differs in PCRE2, so splits match the `tokenizers` library's.
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace dsalign {

// A pre-tokenized piece: a slice of the input, optionally with a space in front (ByteLevel's
// add_prefix_space), which the BPE model then encodes.
struct Piece {
  std::string_view text;
  bool prefix_space = false;
};

// Per-thread matching state (PCRE2 match data and JIT stack). Not shareable across threads.
class RegexScratch {
 public:
  RegexScratch();
  ~RegexScratch();
  RegexScratch(const RegexScratch&) = delete;
  RegexScratch& operator=(const RegexScratch&) = delete;
  void* match_data() const { return match_data_; }
  void* match_context() const { return match_context_; }

 private:
  void* match_data_ = nullptr;
  void* match_context_ = nullptr;
  void* jit_stack_ = nullptr;
};

class PreTokenizer {
 public:
  // `config` is tokenizer.json's "pre_tokenizer"; `where` names it in errors.
  PreTokenizer(const nlohmann::json& config, const std::string& where);
  ~PreTokenizer();
  PreTokenizer(PreTokenizer&&) noexcept;
  // Splits `text` (valid UTF-8) into pieces, appended to `out`.
  void run(std::string_view text, std::vector<Piece>& out, RegexScratch& scratch) const;
  // Whether the chain ends in ByteLevel (required: dsalign supports byte-level BPE).
  bool byte_level() const;

  struct Step;

 private:
  std::vector<std::unique_ptr<Step>> steps_;
};

// Oniguruma -> PCRE2: `\s` also matches U+0085 (NEL), `\h`/`\H` are hex digits (Ruby).
std::string translate_pattern(const std::string& oniguruma);

}  // namespace dsalign
