#include "data/bpe.h"

#include <queue>

#include "data/utf8.h"
#include "util/error.h"

namespace dsalign {
namespace {

// The bytes a byte-level spelling stands for; nullopt when a character is outside the alphabet.
std::optional<std::string> byte_level_to_bytes(const std::string& token) {
  std::string bytes;
  for (size_t i = 0; i < token.size();) {
    int b = utf8::char_to_byte(utf8::next(token, i));
    if (b < 0) return std::nullopt;
    bytes += static_cast<char>(b);
  }
  return bytes;
}

uint64_t pair_key(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

}  // namespace

BytePairModel::BytePairModel(const nlohmann::json& model, const std::string& where) {
  if (!model.is_object() || !model.contains("type") || model["type"] != "BPE")
    fail(where, ": model type ", model.is_object() && model.contains("type") ? model["type"].dump() : "(none)",
         " is not supported (expected BPE)");
  auto truthy = [&](const char* key) { return model.contains(key) && !model[key].is_null() && model[key] != false; };
  if (truthy("byte_fallback")) fail(where, ": byte_fallback BPE is not supported (expected a byte-level BPE)");
  if (truthy("continuing_subword_prefix") || truthy("end_of_word_suffix"))
    fail(where, ": continuing_subword_prefix / end_of_word_suffix are not supported");
  if (model.contains("dropout") && model["dropout"].is_number() && model["dropout"].get<double>() != 0.0)
    fail(where, ": BPE dropout is not supported");
  ignore_merges_ = model.contains("ignore_merges") && model["ignore_merges"] == true;
  if (!model.contains("vocab") || !model["vocab"].is_object()) fail(where, ": 'vocab' must be an object");
  int32_t max_id = -1;
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() > INT32_MAX)
      fail(where, ": vocab['", it.key(), "'] must be a non-negative integer id");
    max_id = std::max(max_id, it.value().get<int32_t>());
  }
  token_bytes_.assign(static_cast<size_t>(max_id + 1), "");
  token_strings_.assign(static_cast<size_t>(max_id + 1), "");
  byte_id_.fill(-1);
  for (auto it = model["vocab"].begin(); it != model["vocab"].end(); ++it) {
    int32_t id = it.value().get<int32_t>();
    if (utf8::first_invalid(it.key())) fail(where, ": vocab entry for id ", id, " is not valid UTF-8");
    auto bytes = byte_level_to_bytes(it.key());
    // Entries outside the byte-level alphabet can never be produced from input bytes; keep their
    // spelling for decoding.
    token_strings_[static_cast<size_t>(id)] = it.key();
    token_bytes_[static_cast<size_t>(id)] = bytes ? *bytes : it.key();
    string_to_id_[it.key()] = id;
    if (bytes) {
      bytes_to_id_[*bytes] = id;
      if (bytes->size() == 1) byte_id_[static_cast<uint8_t>((*bytes)[0])] = id;
    }
  }
  if (!model.contains("merges") || !model["merges"].is_array()) fail(where, ": 'merges' must be a list");
  int32_t rank = 0;
  for (const auto& m : model["merges"]) {
    std::string left, right;
    if (m.is_string()) {  // "a b"
      const std::string& s = m.get_ref<const std::string&>();
      size_t space = s.find(' ', 1);
      if (space == std::string::npos) fail(where, ": merge ", rank, " ", m.dump(), " is not \"left right\"");
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      fail(where, ": merge ", rank, " ", m.dump(), " must be \"left right\" or [left, right]");
    }
    auto l = string_to_id_.find(left), r = string_to_id_.find(right), merged = string_to_id_.find(left + right);
    if (l == string_to_id_.end() || r == string_to_id_.end() || merged == string_to_id_.end())
      fail(where, ": merge ", rank, " ", m.dump(), " uses or makes a token missing from the vocab");
    merges_.emplace(pair_key(l->second, r->second), std::make_pair(rank, merged->second));
    ++rank;
  }
}

std::optional<int32_t> BytePairModel::find(const std::string& token_string) const {
  auto it = string_to_id_.find(token_string);
  if (it == string_to_id_.end()) return std::nullopt;
  return it->second;
}

void BytePairModel::encode(std::string_view word, bool prefix_space, std::vector<int32_t>& out, BpeCache& cache) const {
  std::string key;
  std::string_view text = word;
  if (prefix_space) {
    key.reserve(word.size() + 1);
    key += ' ';
    key += word;
    text = key;
  }
  constexpr size_t kMaxCachedLength = 256;
  if (cache.owner != this) {
    cache.words.clear();
    cache.owner = this;
  }
  if (text.size() < kMaxCachedLength) {
    auto hit = cache.words.find(std::string(text));
    if (hit != cache.words.end()) {
      out.insert(out.end(), hit->second.begin(), hit->second.end());
      return;
    }
  }
  size_t start = out.size();
  if (ignore_merges_) {
    auto whole = bytes_to_id_.find(std::string(text));
    if (whole != bytes_to_id_.end()) out.push_back(whole->second);
    else merge(text, out);
  } else {
    merge(text, out);
  }
  if (text.size() < kMaxCachedLength) {
    if (cache.words.size() > 200000) cache.words.clear();
    cache.words.emplace(std::string(text), std::vector<int32_t>(out.begin() + static_cast<std::ptrdiff_t>(start), out.end()));
  }
}

// Lowest-rank adjacent pair first, leftmost among equal ranks (as the `tokenizers` library).
void BytePairModel::merge(std::string_view text, std::vector<int32_t>& out) const {
  struct Symbol {
    int32_t id;
    int32_t prev, next;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(text.size());
  for (char c : text) {
    int32_t id = byte_id_[static_cast<uint8_t>(c)];
    if (id < 0) continue;  // not in the vocabulary and no unk token: dropped, as the library does
    int32_t index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, index + 1});
  }
  if (symbols.empty()) return;
  symbols.back().next = -1;
  struct Candidate {
    int32_t rank, pos, left_id, right_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
  auto consider = [&](int32_t pos) {
    if (pos < 0) return;
    int32_t next = symbols[static_cast<size_t>(pos)].next;
    if (next < 0) return;
    auto it = merges_.find(pair_key(symbols[static_cast<size_t>(pos)].id, symbols[static_cast<size_t>(next)].id));
    if (it != merges_.end())
      heap.push({it->second.first, pos, symbols[static_cast<size_t>(pos)].id, symbols[static_cast<size_t>(next)].id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(symbols.size()); ++i) consider(i);
  while (!heap.empty()) {
    Candidate c = heap.top();
    heap.pop();
    Symbol& left = symbols[static_cast<size_t>(c.pos)];
    if (left.id != c.left_id || left.next < 0 || symbols[static_cast<size_t>(left.next)].id != c.right_id) continue;  // stale
    Symbol& right = symbols[static_cast<size_t>(left.next)];
    left.id = merges_.at(pair_key(c.left_id, c.right_id)).second;
    right.id = -1;  // removed
    left.next = right.next;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = c.pos;
    consider(left.prev);
    consider(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = symbols[static_cast<size_t>(i)].next) out.push_back(symbols[static_cast<size_t>(i)].id);
}

}  // namespace dsalign
