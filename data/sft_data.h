// SFT data, from JSONL files to packed rows: read records, tokenize them with the chat format
// (on all cores, through an on-disk token cache), apply the length policy, filter by domain,
// split off validation, then per epoch: apply source weights, shuffle, pack.
#pragma once
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/data_config.h"

namespace dsalign {

struct TokenizedExample {
  std::vector<int32_t> ids;
  std::vector<uint8_t> loss_mask;  // 1: the token carries loss
  std::string domain;
  uint32_t source = 0;  // index into DataConfig::sources
  uint64_t line = 0;    // in the source file
};

struct SourceReport {
  std::string path;
  size_t records = 0;                      // well-formed records read
  std::map<std::string, size_t> skipped;   // bad records skipped, by reason (on_error: skip)
  size_t truncated = 0, dropped_too_long = 0, dropped_no_loss = 0;
  size_t filtered_by_domain = 0;
  size_t kept = 0;
  bool from_cache = false;
};

struct SftData {
  std::vector<TokenizedExample> train, validation;
  std::vector<SourceReport> sources;
  std::string summary() const;  // a few lines for the log
};

// Errors: no source file, bad records (with on_error: fail), nothing left after filtering.
SftData prepare_sft_data(const DataConfig& config, const Tokenizer& tokenizer, ChatFormat format,
                         const std::filesystem::path& base_dir);

// The training order of one epoch: indices into data.train, each source's examples taken
// weight times (the fractional part drawn at random), shuffled; seeded by config.seed and epoch.
std::vector<size_t> epoch_order(const SftData& data, const DataConfig& config, int64_t epoch);

// A row of the batch: several whole examples one after another. Positions restart per example;
// document ids tell the decoder not to attend across examples (-1 on padding). labels are the
// ids where the loss mask is set, else -100; an example's first token never carries loss.
struct PackedRow {
  std::vector<int64_t> ids, labels, positions, document_ids;
  int64_t real_tokens = 0;
  size_t first_group = 0, groups = 0;  // the packing units (examples or groups) in the row, in order
};

// Greedy packing in order into rows of max_seq_len (padded to it when pad is true; without
// padding, rows of whole examples up to that many tokens: padding-free batches). Examples longer
// than max_seq_len must have been dropped or truncated already.
std::vector<PackedRow> pack_examples(const std::vector<const TokenizedExample*>& examples, int64_t max_seq_len, bool pad,
                                     int32_t pad_id);
// The same with groups that stay together in one row (a preference pair: chosen, rejected);
// document ids count examples within the row, so group g's members are consecutive documents.
// max_groups_per_row: 0 = as many as fit.
std::vector<PackedRow> pack_groups(const std::vector<std::vector<const TokenizedExample*>>& groups, int64_t max_seq_len,
                                   bool pad, int32_t pad_id, size_t max_groups_per_row = 0);

// Share of real tokens in the rows: packing efficiency.
double packing_efficiency(const std::vector<PackedRow>& rows);

// Where the token cache lives when config.cache_dir is empty.
std::filesystem::path default_token_cache_dir();

}  // namespace dsalign
