// Byte-level BPE: the tokenizer.json "model" of type BPE, worked on raw bytes. Each vocabulary
// entry is stored as the bytes its byte-level string stands for, so a piece of input is encoded
// without first mapping it to the byte-level alphabet; merges are (left id, right id) -> rank.
#pragma once
#include <nlohmann/json.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace dsalign {

// Per-thread word cache: a piece's ids, by its bytes. Not shareable across threads; it belongs
// to the model that last used it (another model empties it first).
struct BpeCache {
  const void* owner = nullptr;
  std::unordered_map<std::string, std::vector<int32_t>> words;
};

class BytePairModel {
 public:
  // `model` is tokenizer.json's "model"; `where` names it in errors.
  BytePairModel(const nlohmann::json& model, const std::string& where);

  // Appends the ids of `word` (optionally preceded by a space) to `out`.
  void encode(std::string_view word, bool prefix_space, std::vector<int32_t>& out, BpeCache& cache) const;

  int32_t size() const { return static_cast<int32_t>(token_bytes_.size()); }
  // The raw bytes of vocabulary entry `id` ("" if the id is not in the vocabulary).
  const std::string& token_bytes(int32_t id) const { return token_bytes_[static_cast<size_t>(id)]; }
  // The vocabulary's own (byte-level) spelling of `id`.
  const std::string& token_string(int32_t id) const { return token_strings_[static_cast<size_t>(id)]; }
  std::optional<int32_t> find(const std::string& token_string) const;

 private:
  void merge(std::string_view word, std::vector<int32_t>& out) const;

  std::vector<std::string> token_bytes_;    // by id
  std::vector<std::string> token_strings_;  // by id
  std::unordered_map<std::string, int32_t> string_to_id_;
  std::unordered_map<std::string, int32_t> bytes_to_id_;  // for ignore_merges
  std::array<int32_t, 256> byte_id_{};                     // id of each single byte, -1 if absent
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (left, right) -> (rank, merged id)
  bool ignore_merges_ = false;
};

}  // namespace dsalign
