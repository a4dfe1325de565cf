#include "dpo/dpo_loss.h"

namespace dsalign {

namespace F = torch::nn::functional;

const char* dpo_loss_name(DpoLossType type) {
  switch (type) {
    case DpoLossType::sigmoid: return "sigmoid";
    case DpoLossType::robust: return "robust";
    case DpoLossType::ipo: return "ipo";
    case DpoLossType::hinge: return "hinge";
    case DpoLossType::rpo: return "rpo";
    case DpoLossType::simpo: return "simpo";
  }
  return "?";
}

DpoTerms dpo_terms(const DpoLossConfig& c, const PairLogps& l) {
  const double b = c.beta, e = c.label_smoothing;
  // -(1-e) log sig(x) - e log sig(-x): DPO's loss, conservative when e > 0.
  auto smoothed = [&](const torch::Tensor& x) { return -(1 - e) * F::logsigmoid(x) - e * F::logsigmoid(-x); };
  DpoTerms t;
  if (c.type == DpoLossType::simpo) {
    torch::Tensor chosen = l.policy_chosen / l.chosen_tokens.clamp_min(1);
    torch::Tensor rejected = l.policy_rejected / l.rejected_tokens.clamp_min(1);
    t.losses = smoothed(b * (chosen - rejected) - c.simpo_gamma);
    t.chosen_logps = chosen.detach();
    t.rejected_logps = rejected.detach();
    t.chosen_rewards = b * t.chosen_logps;
    t.rejected_rewards = b * t.rejected_logps;
    return t;
  }
  TORCH_CHECK(l.reference_chosen.defined(), "dpo loss ", dpo_loss_name(c.type), " needs reference log-probs");
  torch::Tensor chosen_ratio = l.policy_chosen - l.reference_chosen;
  torch::Tensor rejected_ratio = l.policy_rejected - l.reference_rejected;
  torch::Tensor h = chosen_ratio - rejected_ratio;
  switch (c.type) {
    case DpoLossType::sigmoid:
    case DpoLossType::rpo: t.losses = smoothed(b * h); break;
    case DpoLossType::robust:
      t.losses = (-(1 - e) * F::logsigmoid(b * h) + e * F::logsigmoid(-b * h)) / (1 - 2 * e);
      break;
    case DpoLossType::ipo: {
      torch::Tensor h_avg = chosen_ratio / l.chosen_tokens.clamp_min(1) - rejected_ratio / l.rejected_tokens.clamp_min(1);
      t.losses = (h_avg - 1 / (2 * b)).pow(2);
      break;
    }
    case DpoLossType::hinge: t.losses = torch::relu(1 - b * h); break;
    case DpoLossType::simpo: break;  // above
  }
  t.chosen_logps = l.policy_chosen.detach();
  t.rejected_logps = l.policy_rejected.detach();
  t.chosen_rewards = b * chosen_ratio.detach();
  t.rejected_rewards = b * rejected_ratio.detach();
  return t;
}

torch::Tensor micro_batch_loss(const DpoLossConfig& c, const DpoTerms& t, const PairLogps& l, int64_t step_pairs,
                               double step_chosen_tokens) {
  torch::Tensor loss = t.losses.sum() / static_cast<double>(std::max<int64_t>(step_pairs, 1));
  if (c.type == DpoLossType::rpo) loss = loss - c.rpo_alpha * l.policy_chosen.sum() / std::max(step_chosen_tokens, 1.0);
  return loss;
}

}  // namespace dsalign
