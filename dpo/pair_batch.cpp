#include "dpo/pair_batch.h"

namespace dsalign {

PairList::PairList(const std::vector<TokenizedPair>& all) {
  for (size_t i = 0; i < all.size(); ++i) {
    pairs.push_back(&all[i]);
    ids.push_back(i);
  }
}

std::vector<PackedRow> pair_rows(const std::vector<const TokenizedPair*>& pairs, int64_t max_seq_len, bool packing,
                                 int32_t pad_id) {
  std::vector<std::vector<const TokenizedExample*>> groups;
  groups.reserve(pairs.size());
  for (const TokenizedPair* p : pairs) groups.push_back({&p->chosen, &p->rejected});
  return pack_groups(groups, 2 * max_seq_len, false, pad_id, packing ? 0 : 1);
}

PairBatch collate_pairs(const std::vector<PackedRow>& rows, size_t begin, size_t end, const std::vector<size_t>& ids,
                        const torch::Device& device, int32_t pad_id, bool varlen) {
  PairBatch out;
  out.batch = collate(rows, begin, end, device, pad_id, varlen);
  // Pairs are numbered in the batch's row order; rows need not hold consecutive pairs (a rank's
  // rows of a step are every world_size-th row).
  std::vector<int64_t> sequence;
  sequence.reserve(static_cast<size_t>(out.batch.loss_tokens));
  size_t pairs = 0;
  for (size_t r = begin; r < end; ++r) {
    const PackedRow& row = rows[r];
    for (size_t t = 1; t < row.ids.size(); ++t) {
      if (row.labels[t] == -100) continue;
      const auto document = static_cast<size_t>(row.document_ids[t]);
      sequence.push_back(static_cast<int64_t>(2 * (pairs + document / 2) + document % 2));
    }
    for (size_t g = 0; g < row.groups; ++g) out.pair_ids.push_back(ids[row.first_group + g]);
    pairs += row.groups;
  }
  torch::Tensor seq = torch::tensor(sequence, torch::kInt64);
  torch::Tensor counts = torch::bincount(seq, {}, static_cast<int64_t>(2 * pairs)).to(torch::kFloat32).view({-1, 2});
  out.sequence = host_to_device(seq, device);
  out.chosen_tokens = host_to_device(counts.select(1, 0).contiguous(), device);
  out.rejected_tokens = host_to_device(counts.select(1, 1).contiguous(), device);
  return out;
}

SequenceLogps sequence_log_probs(CausalLM& model, const PairBatch& b) {
  torch::Tensor token = model->label_log_probs(b.batch.input, b.batch.labels, b.batch.target_rows);
  torch::Tensor sums = torch::zeros({2 * b.pairs()}, token.options()).index_add(0, b.sequence, token).view({-1, 2});
  return {sums.select(1, 0), sums.select(1, 1)};
}

}  // namespace dsalign
