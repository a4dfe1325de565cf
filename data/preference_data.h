// Preference data for DPO, from JSONL files to tokenized pairs: read {prompt, chosen, rejected}
// records, render prompt + chosen and prompt + rejected with the chat format (the loss mask
// covers only the response), drop what cannot train (and say which lines), filter by domain,
// split off validation.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/data_config.h"
#include "data/sft_data.h"

namespace dsalign {

struct TokenizedPair {
  TokenizedExample chosen, rejected;
  size_t prompt_tokens = 0;  // the shared prefix before the first response token
};

struct PairReport {
  std::string path;
  size_t records = 0;
  std::map<std::string, size_t> skipped;  // bad records (on_error: skip), by reason
  // Pairs that cannot train, dropped and counted, with their line numbers (reason -> lines):
  // "identical chosen and rejected", "prompt leaves no room for a response", "longer than max_seq_len".
  std::map<std::string, std::vector<size_t>> dropped;
  size_t truncated = 0;  // overflow: truncate
  size_t filtered_by_domain = 0;
  size_t kept = 0;
  size_t dropped_count(const std::string& reason) const;
};

inline constexpr const char* kIdenticalPair = "identical chosen and rejected";
inline constexpr const char* kPromptTooLong = "prompt leaves no room for a response";
inline constexpr const char* kPairTooLong = "longer than max_seq_len";

// One file. config.max_seq_len bounds each of prompt + chosen and prompt + rejected.
std::vector<TokenizedPair> read_preference_pairs(const std::filesystem::path& path, const DataConfig& config,
                                                 const Tokenizer& tokenizer, ChatFormat format, PairReport& report);

struct PreferenceData {
  std::vector<TokenizedPair> train, validation;
  std::vector<PairReport> sources;
  std::string summary() const;  // a few lines for the log; dropped pairs name file:line
};

// Every source (weights must be 1: each pair is seen once per epoch), domain filters, then a
// seeded validation split. Errors: a missing file, a bad record (on_error: fail), no pairs left,
// and options that mean nothing for pairs (train_on_all).
PreferenceData prepare_preference_data(const DataConfig& config, const Tokenizer& tokenizer, ChatFormat format);

// The pairs of one epoch in training order: a seeded shuffle of 0..n-1 (seed, epoch).
std::vector<size_t> pair_order(size_t n, int64_t seed, int64_t epoch);

}  // namespace dsalign
