// DeepSeek's tokenizers in C++: a tokenizer.json (byte-level BPE, added tokens, a Sequence of
// Split / Digits / ByteLevel pre-tokenizers, ByteLevel decoder) plus tokenizer_config.json
// (add_bos_token, special tokens, chat template), with the `tokenizers` library's exact ids.
#pragma once
#include <nlohmann/json.hpp>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "data/bpe.h"
#include "data/pre_tokenizer.h"

namespace dsalign {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;
  bool lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// From tokenizer_config.json (transformers' view of the tokenizer).
struct TokenizerSettings {
  bool add_bos_token = false;
  bool add_eos_token = false;
  std::string bos_token, eos_token, pad_token;  // contents; empty when unset
  std::string chat_template;                    // empty when absent
};

// tokenizer_config.json; an Error names the file and key (bad JSON, a flag that is not a
// boolean, a special token of the wrong shape, a chat_template that is not text).
TokenizerSettings read_tokenizer_config(const std::filesystem::path& config_file);

// Per-thread encoding state: regex match data and the BPE word cache. One per thread.
struct EncodeScratch {
  RegexScratch regex;
  BpeCache bpe;
  std::vector<Piece> pieces;
};

class Tokenizer {
 public:
  // <dir>/tokenizer.json and, when present, <dir>/tokenizer_config.json.
  static Tokenizer load(const std::filesystem::path& dir);
  // A parsed tokenizer.json; `where` names it in errors.
  Tokenizer(const nlohmann::json& tokenizer_json, const std::string& where, TokenizerSettings settings = {});
  ~Tokenizer();
  Tokenizer(Tokenizer&&) noexcept;

  // Text (valid UTF-8, else an Error naming the byte offset) -> ids. add_special_tokens adds BOS /
  // EOS as tokenizer_config.json's add_bos_token / add_eos_token ask (what transformers does).
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = false) const;
  void encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out, EncodeScratch& scratch) const;
  // Also the byte range [begin, end) of `text` that each token covers (BOS / EOS added here, and a
  // prefix space, cover nothing: begin == end).
  using Offsets = std::vector<std::pair<uint32_t, uint32_t>>;
  void encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out, EncodeScratch& scratch,
              Offsets* offsets) const;

  // ids -> text; invalid UTF-8 from byte tokens becomes U+FFFD, as the library does.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;
  // The raw bytes id decodes to (before UTF-8 repair); "" for a skipped special token.
  const std::string& token_output_bytes(int32_t id) const;

  std::optional<int32_t> token_to_id(const std::string& token) const;
  std::string id_to_token(int32_t id) const;
  bool is_special(int32_t id) const;
  int32_t vocab_size() const;  // largest id + 1

  const TokenizerSettings& settings() const { return settings_; }
  std::optional<int32_t> bos_id() const { return bos_id_; }
  std::optional<int32_t> eos_id() const { return eos_id_; }
  std::optional<int32_t> pad_id() const { return pad_id_; }
  const std::vector<AddedToken>& added_tokens() const { return added_; }
  // Identifies the tokenizer's files (content hash), for cache keys.
  const std::string& fingerprint() const { return fingerprint_; }

 private:
  struct Matcher;
  void encode_text(std::string_view text, size_t offset, std::vector<int32_t>& out, EncodeScratch& scratch,
                   Offsets* offsets) const;

  std::unique_ptr<BytePairModel> model_;
  std::unique_ptr<PreTokenizer> pre_tokenizer_;
  std::vector<AddedToken> added_;
  std::unique_ptr<Matcher> raw_matcher_;         // added tokens with normalized = false
  std::unique_ptr<Matcher> normalized_matcher_;  // added tokens with normalized = true
  std::vector<std::string> output_bytes_;        // by id: what the ByteLevel decoder makes of it
  std::vector<uint8_t> special_;                 // by id
  TokenizerSettings settings_;
  std::optional<int32_t> bos_id_, eos_id_, pad_id_;  // settings_' tokens, resolved once
  std::string fingerprint_;
};

// Generation-time decoding, token by token, never emitting half a UTF-8 character.
class IncrementalDecoder {
 public:
  IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens);
  std::string push(int32_t id);  // text that is complete so far
  std::string finish();          // whatever is left (incomplete bytes become U+FFFD)

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  std::string pending_;
};

}  // namespace dsalign
