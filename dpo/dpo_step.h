// One DPO forward as the trainer, validation and the parity test all run it: score a batch of
// pairs with the policy and the reference (live model or precomputed table), and add up the
// logged metrics.
#pragma once
#include <nlohmann/json.hpp>

#include "dpo/dpo_loss.h"
#include "dpo/pair_batch.h"
#include "dpo/reference_logps.h"

namespace dsalign {

// At most one of the two is set; neither when the loss needs no reference (simpo).
struct ReferenceSource {
  CausalLM* live = nullptr;              // a frozen model run under no_grad
  const ReferenceTable* table = nullptr; // precomputed log-probs of this pair set
};

// A frozen reference's options beside a policy's: weights in the compute dtype (no master
// weights needed), no activation checkpointing (no backward).
DecoderOptions reference_options(const DecoderOptions& policy);

// The policy's log-probs (with gradients) and, when `reference` has one, the reference's
// (without) for each pair.
PairLogps score_pairs(CausalLM& policy, const PairBatch& batch, const ReferenceSource& reference);

// Sums over pairs of what metrics.jsonl logs (as means): loss, rewards/chosen, rewards/rejected,
// rewards/accuracy (chosen reward > rejected, as TRL counts), rewards/margin, logps/chosen,
// logps/rejected.
struct DpoMetricSums {
  double loss = 0;  // the step's loss (already normalised by the step's pairs)
  double rewards_chosen = 0, rewards_rejected = 0, correct = 0, margin = 0, logps_chosen = 0, logps_rejected = 0;
  int64_t pairs = 0;
  // The figures dpo_metric_figures gave (summed over micro-batches) for `pairs` pairs.
  static DpoMetricSums from_figures(const std::vector<double>& figures, int64_t pairs);
  // Every field as one list (to sum over ranks) and back.
  std::vector<double> to_vector() const;
  static DpoMetricSums from_vector(const std::vector<double>& v);
  nlohmann::json to_json(const std::string& prefix = "") const;
};

// One micro-batch's loss (as given, already normalised) and the sums over its pairs of the other
// six figures, as a [7] tensor where the terms are (on a GPU: summed there, read once per step).
torch::Tensor dpo_metric_figures(const DpoTerms& terms, const torch::Tensor& loss);

// Response tokens that carry loss on the chosen side, summed over pairs (rpo's normaliser).
double chosen_loss_tokens(const std::vector<const TokenizedPair*>& pairs);

// The metrics of a whole pair set without gradients (validation): the loss as if the set were
// one step, in micro-batches of `rows_per_batch` rows. With world_size > 1, only the rows dealt
// to `rank` (round-robin) are scored, normalised as the whole set: summing every rank's result
// gives the whole set's metrics.
DpoMetricSums evaluate_pairs(CausalLM& policy, const std::vector<TokenizedPair>& pairs, const ReferenceSource& reference,
                             const DpoLossConfig& loss, int64_t max_seq_len, bool packing, int64_t rows_per_batch,
                             int32_t pad_id, int64_t world_size = 1, int64_t rank = 0);

}  // namespace dsalign
