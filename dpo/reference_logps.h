// Precomputed reference log-probs: one pass of the frozen reference over every pair writes each
// response's summed log-prob to a cache file, so the reference need not be resident (or run)
// during training. The cache is keyed by the reference's weight files, the compute dtype and
// device type, and every pair's token ids: a change to any of them makes a new entry.
#pragma once
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "data/preference_data.h"
#include "dpo/pair_batch.h"

namespace dsalign {

struct ReferenceTable {
  std::vector<float> chosen, rejected;  // per pair, in data order
  // The reference's log-probs of the pairs with these ids, [P] fp32 on `device`.
  std::pair<torch::Tensor, torch::Tensor> lookup(const std::vector<size_t>& ids, const torch::Device& device) const;
};

// The reference over `pairs` in data order, `rows_per_batch` rows per forward, with progress.
// With sharded units (zero3) every rank takes the same number of forwards: one out of pairs
// scores `filler` (a pair of the whole set) and drops the result.
ReferenceTable compute_reference_table(CausalLM& reference, const std::vector<TokenizedPair>& pairs, int64_t max_seq_len,
                                       bool packing, int64_t rows_per_batch, int32_t pad_id, const std::string& label,
                                       const TokenizedPair* filler = nullptr);

// Content hash of a checkpoint directory's config.json and weight files. Hashing reads every
// weight byte, so the result is remembered in <memo_dir>/weights_fingerprints.json under the
// files' paths, sizes and modification times: a rerun or resume does not read them again.
std::string weights_fingerprint(const std::filesystem::path& dir, const std::filesystem::path& memo_dir);

std::string reference_cache_key(const std::string& weights_fingerprint, const DecoderOptions& options,
                                const std::vector<TokenizedPair>& train, const std::vector<TokenizedPair>& validation);

// <dir>/<key>.safetensors with tensors train.chosen, train.rejected, validation.chosen,
// validation.rejected. nullopt when absent or not matching the pair counts.
std::optional<std::pair<ReferenceTable, ReferenceTable>> read_reference_cache(const std::filesystem::path& file,
                                                                              size_t train_pairs, size_t validation_pairs);
void write_reference_cache(const std::filesystem::path& file, const ReferenceTable& train, const ReferenceTable& validation);

// Where caches live when dpo.reference.cache_dir is empty: ~/.cache/dsalign/reference_logps.
std::filesystem::path default_reference_cache_dir();

}  // namespace dsalign
