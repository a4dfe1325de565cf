#include "train/adamw.h"

#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_fused_adamw.h>

#include <cmath>
#include <map>
#include <tuple>

namespace dsalign {

AdamW::AdamW(std::vector<AdamWGroup> groups, AdamWSettings settings) : groups_(std::move(groups)), settings_(settings) {}

AdamW::ParamState& AdamW::state_for(const torch::Tensor& p) {
  auto [it, fresh] = state_.try_emplace(p.unsafeGetTensorImpl());
  if (fresh) {
    it->second.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
    it->second.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
    it->second.step_tensor = torch::zeros({}, p.options().dtype(torch::kFloat32));
  }
  return it->second;
}

const AdamW::ParamState* AdamW::state(const torch::Tensor& p) const {
  auto it = state_.find(p.unsafeGetTensorImpl());
  return it == state_.end() ? nullptr : &it->second;
}

void AdamW::set_state(const torch::Tensor& p, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, int64_t step) {
  torch::NoGradGuard no_grad;
  ParamState& s = state_[p.unsafeGetTensorImpl()];
  s.exp_avg = exp_avg.to(p.device(), p.scalar_type()).clone();
  s.exp_avg_sq = exp_avg_sq.to(p.device(), p.scalar_type()).clone();
  s.step = step;
  s.step_tensor = torch::full({}, static_cast<double>(step), p.options().dtype(torch::kFloat32));
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  for (const AdamWGroup& group : groups_) {
    if (!settings_.fused) {
      reference_step(group, lr);
      continue;
    }
    // The fused kernel wants a parameter and its gradient alike (dtype, device, dense); others
    // (zero3's bf16 rows with fp32 gradients) take the reference update.
    AdamWGroup fused{{}, group.weight_decay}, rest{{}, group.weight_decay};
    for (const torch::Tensor& p : group.params) {
      const torch::Tensor& g = p.grad();
      const bool alike = !g.defined() || (g.scalar_type() == p.scalar_type() && g.device() == p.device() &&
                                          g.is_contiguous() && p.is_contiguous());
      (alike ? fused : rest).params.push_back(p);
    }
    fused_step(fused, lr);
    reference_step(rest, lr);
  }
}

void AdamW::fused_step(const AdamWGroup& group, double lr) {
  // The kernel takes lists of one device and dtype.
  struct Lists {
    std::vector<torch::Tensor> params, grads, exp_avgs, exp_avg_sqs, steps;
  };
  std::map<std::tuple<int, int, int>, Lists> by_device_dtype;
  for (const torch::Tensor& p : group.params) {
    if (!p.grad().defined()) continue;
    ParamState& s = state_for(p);
    ++s.step;
    Lists& l = by_device_dtype[{static_cast<int>(p.device().type()), p.device().index(), static_cast<int>(p.scalar_type())}];
    l.params.push_back(p);
    l.grads.push_back(p.grad());
    l.exp_avgs.push_back(s.exp_avg);
    l.exp_avg_sqs.push_back(s.exp_avg_sq);
    l.steps.push_back(s.step_tensor);
  }
  for (auto& [key, l] : by_device_dtype) {
    at::_foreach_add_(l.steps, 1);  // the kernel reads the step count; torch counts before calling it
    at::_fused_adamw_(l.params, l.grads, l.exp_avgs, l.exp_avg_sqs, /*max_exp_avg_sqs=*/{}, l.steps, lr, settings_.beta1,
                      settings_.beta2, group.weight_decay, settings_.eps, /*amsgrad=*/false, /*maximize=*/false);
  }
}

void AdamW::reference_step(const AdamWGroup& group, double lr) {
  const double b1 = settings_.beta1, b2 = settings_.beta2;
  for (const torch::Tensor& param : group.params) {
    if (!param.grad().defined()) continue;
    torch::Tensor p = param;
    const torch::Tensor g = param.grad().to(p.scalar_type());
    ParamState& s = state_for(p);
    s.step_tensor.add_(1);
    const double t = static_cast<double>(++s.step);
    p.mul_(1 - lr * group.weight_decay);
    s.exp_avg.mul_(b1).add_(g, 1 - b1);
    s.exp_avg_sq.mul_(b2).addcmul_(g, g, 1 - b2);
    const double correction1 = 1 - std::pow(b1, t), correction2 = 1 - std::pow(b2, t);
    torch::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(correction2)).add_(settings_.eps);
    p.addcdiv_(s.exp_avg, denom, -lr / correction1);
  }
}

}  // namespace dsalign
