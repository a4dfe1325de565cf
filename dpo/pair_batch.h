// Preference pairs as model input: each pair's chosen and rejected sequences are consecutive
// documents of one row (positions restart, no attention across them), so one forward scores
// both; with data.packing several pairs share a row of up to 2 x max_seq_len tokens. The log-prob
// of each response is then summed per sequence.
#pragma once
#include <vector>

#include "data/preference_data.h"
#include "model/decoder.h"
#include "train/run_setup.h"

namespace dsalign {

// Rows for `pairs` in the given order (no padding; collation pads to the longest row). Row r
// holds pairs [first_group, first_group + groups) of the list.
std::vector<PackedRow> pair_rows(const std::vector<const TokenizedPair*>& pairs, int64_t max_seq_len, bool packing,
                                 int32_t pad_id);

// Every pair of a set in data order, as pair_rows() and collate_pairs() take them (ids 0..n-1).
struct PairList {
  std::vector<const TokenizedPair*> pairs;
  std::vector<size_t> ids;
  explicit PairList(const std::vector<TokenizedPair>& all);
};

struct PairBatch {
  Batch batch;
  // [N] int64 on the device: for each label token, in CausalLM::label_log_probs order, the
  // sequence it belongs to: 2 * (pair within this batch) + (0 chosen, 1 rejected).
  torch::Tensor sequence;
  std::vector<size_t> pair_ids;                  // the pairs' ids (as given to collate_pairs), in order
  torch::Tensor chosen_tokens, rejected_tokens;  // [P] fp32 on the device: response tokens per sequence
  int64_t pairs() const { return static_cast<int64_t>(pair_ids.size()); }
};

// Rows [begin, end) of pair_rows(); ids[k] names the k-th pair of the list pair_rows() was given.
PairBatch collate_pairs(const std::vector<PackedRow>& rows, size_t begin, size_t end, const std::vector<size_t>& ids,
                        const torch::Device& device, int32_t pad_id, bool varlen = false);

struct SequenceLogps {
  torch::Tensor chosen, rejected;  // [P] fp32: sum of log p over each response's tokens
};
SequenceLogps sequence_log_probs(CausalLM& model, const PairBatch& batch);

}  // namespace dsalign
