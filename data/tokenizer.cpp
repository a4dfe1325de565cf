#include "data/tokenizer.h"

#include <array>
#include <unordered_map>

#include "data/utf8.h"
#include "util/error.h"
#include "util/files.h"
#include "util/hash.h"

namespace dsalign {

namespace {

using nlohmann::json;

bool is_unicode_whitespace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// Word characters for single_word added tokens: ASCII letters, digits, '_', and any non-ASCII
// non-space character (an approximation of Rust's char::is_alphanumeric; no DeepSeek tokenizer
// uses single_word).
bool is_word_char(char32_t c) {
  if (c < 0x80) return std::isalnum(static_cast<int>(c)) || c == '_';
  return !is_unicode_whitespace(c);
}

char32_t last_char(std::string_view s) {
  size_t i = s.size();
  while (i > 0 && (static_cast<uint8_t>(s[i - 1]) & 0xC0) == 0x80) --i;
  if (i == 0) return 0;
  --i;
  return utf8::next(s, i);
}

// What the ByteLevel decoder turns a token's spelling into: the bytes of its byte-level
// characters, or its own UTF-8 when any character is outside that alphabet.
std::string byte_level_decode(const std::string& token) {
  std::string bytes;
  for (size_t i = 0; i < token.size();) {
    int b = utf8::char_to_byte(utf8::next(token, i));
    if (b < 0) return token;
    bytes += static_cast<char>(b);
  }
  return bytes;
}

std::string token_content(const json& v, const std::string& where, const char* key) {
  if (v.is_null()) return "";
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
  fail(where, ": '", key, "' must be a string or an AddedToken object with 'content'");
}

// An added token's optional flag ("special", "lstrip", ...): absent is `otherwise`.
bool added_token_flag(const json& token, const char* key, bool otherwise, const std::string& where) {
  if (!token.contains(key)) return otherwise;
  if (!token[key].is_boolean())
    fail(where, ": added token ", token["content"].dump(), ": '", key, "' must be true or false, got ", token[key].dump());
  return token[key].get<bool>();
}

}  // namespace

// Leftmost-longest matching of added tokens (as the library's Aho-Corasick with
// MatchKind::LeftmostLongest), with lstrip / rstrip / single_word handled as its find_matches.
struct Tokenizer::Matcher {
  struct Node {
    std::unordered_map<uint8_t, int32_t> next;
    int32_t token = -1;  // index into the tokenizer's added tokens
  };
  std::vector<Node> nodes{Node{}};
  std::array<bool, 256> first{};
  std::vector<AddedToken> tokens;  // its own copy: a Tokenizer must stay valid when moved

  void add(const std::string& content, int32_t index) {
    if (content.empty()) return;
    int32_t n = 0;
    for (char c : content) {
      auto it = nodes[static_cast<size_t>(n)].next.find(static_cast<uint8_t>(c));
      if (it == nodes[static_cast<size_t>(n)].next.end()) {
        nodes.push_back(Node{});
        int32_t child = static_cast<int32_t>(nodes.size() - 1);
        nodes[static_cast<size_t>(n)].next[static_cast<uint8_t>(c)] = child;
        n = child;
      } else {
        n = it->second;
      }
    }
    nodes[static_cast<size_t>(n)].token = index;
    first[static_cast<uint8_t>(content[0])] = true;
  }
  bool empty() const { return nodes.size() == 1; }

  struct Segment {
    size_t begin, end;
    int32_t id;  // -1: plain text
  };

  void split(std::string_view s, std::vector<Segment>& out) const {
    size_t start_offset = 0;
    size_t i = 0;
    while (i < s.size()) {
      if (!first[static_cast<uint8_t>(s[i])]) {
        ++i;
        continue;
      }
      int32_t n = 0, best = -1;
      size_t best_end = 0;
      for (size_t j = i; j < s.size(); ++j) {
        auto it = nodes[static_cast<size_t>(n)].next.find(static_cast<uint8_t>(s[j]));
        if (it == nodes[static_cast<size_t>(n)].next.end()) break;
        n = it->second;
        if (nodes[static_cast<size_t>(n)].token >= 0) {
          best = nodes[static_cast<size_t>(n)].token;
          best_end = j + 1;
        }
      }
      if (best < 0) {
        ++i;
        continue;
      }
      const AddedToken& token = tokens[static_cast<size_t>(best)];
      size_t start = i, stop = best_end;
      i = best_end;  // matching resumes after this match even if it is discarded
      if (token.single_word) {
        bool start_ok = start == 0 || !is_word_char(last_char(s.substr(0, start)));
        size_t k = stop;
        bool stop_ok = stop == s.size() || !is_word_char(utf8::next(s, k));
        if (!start_ok || !stop_ok) continue;
      }
      if (token.lstrip) {
        size_t new_start = start;
        while (new_start > 0) {
          char32_t c = last_char(s.substr(0, new_start));
          if (!is_unicode_whitespace(c)) break;
          size_t len = 1;
          while ((static_cast<uint8_t>(s[new_start - len]) & 0xC0) == 0x80) ++len;
          new_start -= len;
        }
        start = std::max(new_start, start_offset);
      }
      if (token.rstrip) {
        while (stop < s.size()) {
          size_t k = stop;
          if (!is_unicode_whitespace(utf8::next(s, k))) break;
          stop = k;
        }
        i = std::max(i, stop);
      }
      if (start_offset < start) out.push_back({start_offset, start, -1});
      out.push_back({start, stop, token.id});
      start_offset = stop;
    }
    if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
  }
};

Tokenizer::Tokenizer(const json& j, const std::string& where, TokenizerSettings settings) : settings_(std::move(settings)) {
  if (!j.is_object()) fail(where, ": expected a JSON object");
  fingerprint_ = Hasher()
                     .add(j.dump())
                     .add(uint64_t{settings_.add_bos_token})
                     .add(uint64_t{settings_.add_eos_token})
                     .add(settings_.bos_token)
                     .add(settings_.eos_token)
                     .add(settings_.pad_token)
                     .hex();
  if (j.contains("normalizer") && !j["normalizer"].is_null()) {
    const json& n = j["normalizer"];
    std::string type = n.contains("type") && n["type"].is_string() ? n["type"].get<std::string>() : "?";
    if (type != "Sequence") fail(where, ": normalizer type '", type, "' is not supported (only an empty Sequence)");
    if (!n.contains("normalizers") || !n["normalizers"].is_array()) fail(where, ": normalizer Sequence needs 'normalizers'");
    for (const auto& inner : n["normalizers"])
      fail(where, ": normalizer type '", inner.contains("type") ? inner["type"].get<std::string>() : "?",
           "' is not supported (only an empty Sequence)");
  }
  if (j.contains("decoder") && !j["decoder"].is_null()) {
    const json& d = j["decoder"];
    if (!d.contains("type") || d["type"] != "ByteLevel")
      fail(where, ": decoder type ", d.contains("type") ? d["type"].dump() : "?", " is not supported (expected ByteLevel)");
  }
  if (j.contains("post_processor") && !j["post_processor"].is_null()) {
    const json& p = j["post_processor"];
    std::string type = p.contains("type") && p["type"].is_string() ? p["type"].get<std::string>() : "?";
    // BOS / EOS follow tokenizer_config.json (add_bos_token), as transformers does.
    if (type != "ByteLevel" && type != "TemplateProcessing")
      fail(where, ": post_processor type '", type, "' is not supported (expected ByteLevel or TemplateProcessing)");
  }
  model_ = std::make_unique<BytePairModel>(j.value("model", json()), where + " model");
  pre_tokenizer_ = std::make_unique<PreTokenizer>(j.value("pre_tokenizer", json()), where + " pre_tokenizer");
  if (!pre_tokenizer_->byte_level())
    fail(where, ": the pre_tokenizer must end in ByteLevel (dsalign supports byte-level BPE tokenizers)");

  int32_t size = model_->size();
  if (j.contains("added_tokens") && !j["added_tokens"].is_null()) {
    if (!j["added_tokens"].is_array()) fail(where, ": 'added_tokens' must be a list");
    for (const auto& t : j["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t["id"].is_number_integer() || !t.contains("content") || !t["content"].is_string())
        fail(where, ": added token ", t.dump(), " needs an integer 'id' and a string 'content'");
      AddedToken a;
      a.id = t["id"].get<int32_t>();
      a.content = t["content"].get<std::string>();
      a.special = added_token_flag(t, "special", false, where);
      a.lstrip = added_token_flag(t, "lstrip", false, where);
      a.rstrip = added_token_flag(t, "rstrip", false, where);
      a.single_word = added_token_flag(t, "single_word", false, where);
      a.normalized = added_token_flag(t, "normalized", !a.special, where);
      if (a.id < 0) fail(where, ": added token '", a.content, "' has a negative id");
      size = std::max(size, a.id + 1);
      added_.push_back(std::move(a));
    }
  }
  raw_matcher_ = std::make_unique<Matcher>();
  normalized_matcher_ = std::make_unique<Matcher>();
  raw_matcher_->tokens = normalized_matcher_->tokens = added_;
  for (size_t i = 0; i < added_.size(); ++i)
    (added_[i].normalized ? normalized_matcher_ : raw_matcher_)->add(added_[i].content, static_cast<int32_t>(i));

  output_bytes_.assign(static_cast<size_t>(size), "");
  special_.assign(static_cast<size_t>(size), 0);
  for (int32_t id = 0; id < model_->size(); ++id) output_bytes_[static_cast<size_t>(id)] = model_->token_bytes(id);
  for (const auto& a : added_) {
    output_bytes_[static_cast<size_t>(a.id)] = byte_level_decode(a.content);
    special_[static_cast<size_t>(a.id)] = a.special;
  }
  auto resolve = [&](const std::string& token) { return token.empty() ? std::nullopt : token_to_id(token); };
  bos_id_ = resolve(settings_.bos_token);
  eos_id_ = resolve(settings_.eos_token);
  pad_id_ = resolve(settings_.pad_token);
}

Tokenizer::~Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;

TokenizerSettings read_tokenizer_config(const std::filesystem::path& config_file) {
  TokenizerSettings settings;
  const std::string where = config_file.string();
  json c;
  try {
    c = json::parse(read_text_file(config_file));
  } catch (const json::exception& e) {
    fail(where, ": invalid JSON: ", first_line(e));
  }
  if (!c.is_object()) fail(where, ": expected a JSON object");
  auto flag = [&](const char* key, bool fallback) {
    if (!c.contains(key) || c[key].is_null()) return fallback;
    if (!c[key].is_boolean()) fail(where, ": '", key, "' must be true or false");
    return c[key].get<bool>();
  };
  // LlamaTokenizerFast adds BOS unless told otherwise.
  const bool llama = c.contains("tokenizer_class") && c["tokenizer_class"] == "LlamaTokenizerFast";
  settings.add_bos_token = flag("add_bos_token", llama);
  settings.add_eos_token = flag("add_eos_token", false);
  settings.bos_token = token_content(c.value("bos_token", json()), where, "bos_token");
  settings.eos_token = token_content(c.value("eos_token", json()), where, "eos_token");
  settings.pad_token = token_content(c.value("pad_token", json()), where, "pad_token");
  if (c.contains("chat_template") && !c["chat_template"].is_null()) {
    const json& t = c["chat_template"];
    if (t.is_string()) {
      settings.chat_template = t.get<std::string>();
    } else if (t.is_array()) {
      for (const auto& named : t)
        if (named.is_object() && named.contains("name") && named["name"] == "default" && named.contains("template") &&
            named["template"].is_string())
          settings.chat_template = named["template"].get<std::string>();
    } else {
      fail(where, ": 'chat_template' must be a string or a list of {name, template}");
    }
  }
  return settings;
}

Tokenizer Tokenizer::load(const std::filesystem::path& dir) {
  std::filesystem::path file = is_existing_directory(dir) ? dir / "tokenizer.json" : dir;
  if (!path_exists(file)) fail(file.string(), ": not found (expected a Hugging Face tokenizer.json)");
  json j;
  try {
    j = json::parse(read_text_file(file));
  } catch (const json::exception& e) {
    fail(file.string(), ": invalid JSON: ", first_line(e));
  }
  TokenizerSettings settings;
  const std::filesystem::path config_file = file.parent_path() / "tokenizer_config.json";
  if (path_exists(config_file)) settings = read_tokenizer_config(config_file);
  std::filesystem::path jinja = file.parent_path() / "chat_template.jinja";
  if (settings.chat_template.empty() && path_exists(jinja)) settings.chat_template = read_text_file(jinja);
  // A field of the wrong type that no check names is still one line naming the file.
  std::optional<Tokenizer> loaded;
  try {
    loaded.emplace(j, file.string(), settings);
  } catch (const json::exception& e) {
    fail(file.string(), ": ", first_line(e));
  }
  const Tokenizer& tokenizer = *loaded;
  for (const auto* name : {&settings.bos_token, &settings.eos_token, &settings.pad_token})
    if (!name->empty() && !tokenizer.token_to_id(*name))
      fail(config_file.string(), ": special token '", *name, "' is not in ", file.filename().string());
  return std::move(*loaded);
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  EncodeScratch scratch;
  std::vector<int32_t> ids;
  encode(text, add_special_tokens, ids, scratch);
  return ids;
}

void Tokenizer::encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out, EncodeScratch& scratch) const {
  encode(text, add_special_tokens, out, scratch, nullptr);
}

void Tokenizer::encode(std::string_view text, bool add_special_tokens, std::vector<int32_t>& out, EncodeScratch& scratch,
                       Offsets* offsets) const {
  if (auto bad = utf8::first_invalid(text)) fail("input is not valid UTF-8 (byte ", *bad, ")");
  auto emit = [&](int32_t id, size_t begin, size_t end) {
    out.push_back(id);
    if (offsets) offsets->emplace_back(static_cast<uint32_t>(begin), static_cast<uint32_t>(end));
  };
  if (add_special_tokens && settings_.add_bos_token)
    if (auto bos = bos_id()) emit(*bos, 0, 0);
  std::vector<Matcher::Segment> outer, inner;
  raw_matcher_->split(text, outer);
  for (const auto& segment : outer) {
    if (segment.id >= 0) {
      emit(segment.id, segment.begin, segment.end);
      continue;
    }
    std::string_view gap = text.substr(segment.begin, segment.end - segment.begin);
    inner.clear();
    normalized_matcher_->split(gap, inner);
    for (const auto& piece : inner) {
      if (piece.id >= 0) emit(piece.id, segment.begin + piece.begin, segment.begin + piece.end);
      else encode_text(gap.substr(piece.begin, piece.end - piece.begin), segment.begin + piece.begin, out, scratch, offsets);
    }
  }
  if (add_special_tokens && settings_.add_eos_token)
    if (auto eos = eos_id()) emit(*eos, text.size(), text.size());
}

void Tokenizer::encode_text(std::string_view text, size_t offset, std::vector<int32_t>& out, EncodeScratch& scratch,
                            Offsets* offsets) const {
  scratch.pieces.clear();
  pre_tokenizer_->run(text, scratch.pieces, scratch.regex);
  for (const Piece& piece : scratch.pieces) {
    size_t first = out.size();
    model_->encode(piece.text, piece.prefix_space, out, scratch.bpe);
    if (!offsets) continue;
    // Tokens cover consecutive bytes of the piece; a prefix space covers no input byte.
    size_t position = offset + static_cast<size_t>(piece.text.data() - text.data());
    size_t skip = piece.prefix_space ? 1 : 0;
    for (size_t i = first; i < out.size(); ++i) {
      size_t length = output_bytes_[static_cast<size_t>(out[i])].size();
      size_t used = std::min(skip, length);
      skip -= used;
      offsets->emplace_back(static_cast<uint32_t>(position), static_cast<uint32_t>(position + length - used));
      position += length - used;
    }
  }
}

const std::string& Tokenizer::token_output_bytes(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("token id ", id, " is outside the vocabulary (0..", vocab_size() - 1, ")");
  return output_bytes_[static_cast<size_t>(id)];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    const std::string& b = token_output_bytes(id);
    if (skip_special_tokens && special_[static_cast<size_t>(id)]) continue;
    bytes += b;
  }
  return utf8::lossy(bytes);
}

std::optional<int32_t> Tokenizer::token_to_id(const std::string& token) const {
  for (const auto& a : added_)
    if (a.content == token) return a.id;
  return model_->find(token);
}

std::string Tokenizer::id_to_token(int32_t id) const {
  for (const auto& a : added_)
    if (a.id == id) return a.content;
  if (id >= 0 && id < model_->size()) return model_->token_string(id);
  fail("token id ", id, " is outside the vocabulary (0..", vocab_size() - 1, ")");
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < vocab_size() && special_[static_cast<size_t>(id)];
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(output_bytes_.size()); }

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool skip_special_tokens)
    : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}

std::string IncrementalDecoder::push(int32_t id) {
  const std::string& bytes = tokenizer_.token_output_bytes(id);
  if (skip_special_ && tokenizer_.is_special(id)) return "";
  pending_ += bytes;
  size_t ready = utf8::complete_prefix(pending_);
  std::string text = utf8::lossy(std::string_view(pending_).substr(0, ready));
  pending_.erase(0, ready);
  return text;
}

std::string IncrementalDecoder::finish() {
  std::string text = utf8::lossy(pending_);
  pending_.clear();
  return text;
}

}  // namespace dsalign
