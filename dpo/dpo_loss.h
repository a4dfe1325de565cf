// The DPO family of preference losses, in one code path over per-sequence log-probs of the
// response tokens. Each matches a line of TRL 1.16 (the oracle tests/oracles/make_dpo_cases.py
// records TRL's numbers; tests/test_dpo_parity.cpp compares).
//
// h = (log pi(chosen) - log ref(chosen)) - (log pi(rejected) - log ref(rejected)), b = beta:
//   sigmoid  DPO, Rafailov et al. 2023 (arXiv 2305.18290), eq. 7: -log sig(b h).
//            With label_smoothing e > 0, conservative DPO (cDPO; Mitchell 2023, "A note on DPO
//            with noisy preferences"): -(1-e) log sig(b h) - e log sig(-b h). TRL 1.16:
//            dpo_trainer.py `loss_type == "sigmoid"` (e = 0); its `"aot"` branch keeps the cDPO
//            expression, which it equals for one pair.
//   robust   rDPO, Chowdhury et al. 2024 (arXiv 2403.00409), e = flip probability in [0, 0.5):
//            (-(1-e) log sig(b h) + e log sig(-b h)) / (1 - 2e). TRL: `loss_type == "robust"`.
//   ipo      IPO, Azar et al. 2023 (arXiv 2310.12036), eq. 17, with TRL's per-token normalisation
//            of each log-ratio: (h_avg - 1/(2b))^2. TRL: `loss_type == "ipo"`.
//   hinge    SLiC-HF, Zhao et al. 2023 (arXiv 2305.10425): max(0, 1 - b h). TRL: `"hinge"`.
//   rpo      RPO, Pang et al. 2024 (arXiv 2404.19733): sigmoid + alpha * NLL of the chosen
//            responses (mean over the step's chosen tokens). TRL: loss_type=["sigmoid", "sft"],
//            loss_weights=[1, alpha].
//   simpo    SimPO, Meng et al. 2024 (arXiv 2405.14734), reference-free and length-normalised:
//            -log sig(b (avg log pi(chosen) - avg log pi(rejected)) - gamma), with the same
//            label smoothing. TRL: experimental/cpo/cpo_trainer.py `loss_type == "simpo"`,
//            cpo_alpha = 0.
// Rewards, as TRL logs them: b (log pi - log ref) per response (simpo: b avg log pi).
#pragma once
#include <string>

#include <torch/torch.h>

namespace dsalign {

enum class DpoLossType { sigmoid, robust, ipo, hinge, rpo, simpo };
const char* dpo_loss_name(DpoLossType type);

struct DpoLossConfig {
  DpoLossType type = DpoLossType::sigmoid;
  double beta = 0.1;
  double label_smoothing = 0.0;  // sigmoid / rpo / simpo: cDPO's e; robust: the flip probability
  double rpo_alpha = 1.0;        // rpo: weight of the chosen NLL
  double simpo_gamma = 0.5;      // simpo: target reward margin
  bool needs_reference() const { return type != DpoLossType::simpo; }
};

// Per pair [P], fp32. The policy's carry gradients; the reference's do not (undefined for simpo).
struct PairLogps {
  torch::Tensor policy_chosen, policy_rejected;
  torch::Tensor reference_chosen, reference_rejected;
  torch::Tensor chosen_tokens, rejected_tokens;  // response tokens per sequence, fp32
};

struct DpoTerms {
  torch::Tensor losses;                           // [P] the preference loss per pair
  torch::Tensor chosen_rewards, rejected_rewards; // [P] detached
  torch::Tensor chosen_logps, rejected_logps;     // [P] detached, as logged (simpo: per-token means)
};
DpoTerms dpo_terms(const DpoLossConfig& config, const PairLogps& logps);

// What one micro-batch adds to the step's loss, so that micro-batches sum to the loss of the whole
// step at once: its pairs' losses / step_pairs, plus for rpo alpha * its chosen NLL / the step's
// chosen tokens.
torch::Tensor micro_batch_loss(const DpoLossConfig& config, const DpoTerms& terms, const PairLogps& logps,
                               int64_t step_pairs, double step_chosen_tokens);

}  // namespace dsalign
