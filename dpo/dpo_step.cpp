#include "dpo/dpo_step.h"

#include "dist/shard_plan.h"
#include "train/device_sums.h"

namespace dsalign {

DecoderOptions reference_options(const DecoderOptions& policy) {
  DecoderOptions o = policy;
  o.param_dtype = policy.compute_dtype;
  o.activation_checkpointing = false;
  return o;
}

PairLogps score_pairs(CausalLM& policy, const PairBatch& batch, const ReferenceSource& reference) {
  SequenceLogps p = sequence_log_probs(policy, batch);
  PairLogps out{p.chosen, p.rejected, {}, {}, batch.chosen_tokens, batch.rejected_tokens};
  if (reference.live) {
    torch::NoGradGuard no_grad;
    SequenceLogps r = sequence_log_probs(*reference.live, batch);
    out.reference_chosen = r.chosen;
    out.reference_rejected = r.rejected;
  } else if (reference.table) {
    std::tie(out.reference_chosen, out.reference_rejected) = reference.table->lookup(batch.pair_ids, p.chosen.device());
  }
  return out;
}

torch::Tensor dpo_metric_figures(const DpoTerms& t, const torch::Tensor& loss) {
  return torch::stack({loss.detach().to(torch::kFloat32).reshape({}), t.chosen_rewards.sum(), t.rejected_rewards.sum(),
                       (t.chosen_rewards > t.rejected_rewards).sum().to(torch::kFloat32),
                       (t.chosen_rewards - t.rejected_rewards).sum(), t.chosen_logps.sum(), t.rejected_logps.sum()})
      .detach()
      .to(torch::kFloat64);
}

DpoMetricSums DpoMetricSums::from_figures(const std::vector<double>& f, int64_t pairs) {
  std::vector<double> v = f;
  v.push_back(static_cast<double>(pairs));
  return from_vector(v);
}

nlohmann::json DpoMetricSums::to_json(const std::string& prefix) const {
  const double n = static_cast<double>(std::max<int64_t>(pairs, 1));
  return {{prefix + "loss", loss},
          {prefix + "rewards/chosen", rewards_chosen / n},
          {prefix + "rewards/rejected", rewards_rejected / n},
          {prefix + "rewards/accuracy", correct / n},
          {prefix + "rewards/margin", margin / n},
          {prefix + "logps/chosen", logps_chosen / n},
          {prefix + "logps/rejected", logps_rejected / n}};
}

std::vector<double> DpoMetricSums::to_vector() const {
  return {loss, rewards_chosen, rewards_rejected, correct, margin, logps_chosen, logps_rejected, static_cast<double>(pairs)};
}

DpoMetricSums DpoMetricSums::from_vector(const std::vector<double>& v) {
  DpoMetricSums s;
  s.loss = v.at(0), s.rewards_chosen = v.at(1), s.rewards_rejected = v.at(2), s.correct = v.at(3), s.margin = v.at(4);
  s.logps_chosen = v.at(5), s.logps_rejected = v.at(6), s.pairs = static_cast<int64_t>(v.at(7));
  return s;
}

double chosen_loss_tokens(const std::vector<const TokenizedPair*>& pairs) {
  double n = 0;
  for (const TokenizedPair* p : pairs)
    for (size_t t = 1; t < p->chosen.loss_mask.size(); ++t) n += p->chosen.loss_mask[t];
  return n;
}

DpoMetricSums evaluate_pairs(CausalLM& policy, const std::vector<TokenizedPair>& pairs, const ReferenceSource& reference,
                             const DpoLossConfig& loss, int64_t max_seq_len, bool packing, int64_t rows_per_batch,
                             int32_t pad_id, int64_t world_size, int64_t rank) {
  torch::NoGradGuard no_grad;
  const PairList all(pairs);
  const std::vector<size_t>& ids = all.ids;
  const double chosen_tokens = chosen_loss_tokens(all.pairs);
  std::vector<PackedRow> all_rows = pair_rows(all.pairs, max_seq_len, packing, pad_id), rows;
  for (size_t i : rank_rows(0, all_rows.size(), world_size, rank)) rows.push_back(all_rows[i]);
  DeviceSums figures;
  int64_t scored = 0;
  const auto per_batch = static_cast<size_t>(rows_per_batch);
  const int64_t batches = static_cast<int64_t>((rows.size() + per_batch - 1) / per_batch);
  // Under zero3 every rank takes the same number of turns: one out of rows scores the first row
  // and drops the result.
  for (int64_t t = 0, turns = policy->turns_in_lockstep(batches); t < turns; ++t) {
    const size_t b = static_cast<size_t>(t) * per_batch;
    const bool real = t < batches;
    const bool varlen = policy->uses_varlen_attention();
    PairBatch batch = real ? collate_pairs(rows, b, std::min(rows.size(), b + per_batch), ids, policy->options.device,
                                           pad_id, varlen)
                           : collate_pairs(all_rows, 0, 1, ids, policy->options.device, pad_id, varlen);
    PairLogps logps = score_pairs(policy, batch, reference);
    if (!real) continue;
    DpoTerms terms = dpo_terms(loss, logps);
    figures.add(dpo_metric_figures(terms, micro_batch_loss(loss, terms, logps, static_cast<int64_t>(pairs.size()), chosen_tokens)));
    scored += terms.losses.size(0);
  }
  return DpoMetricSums::from_figures(figures.read(7), scored);
}

}  // namespace dsalign
