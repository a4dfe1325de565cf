// AdamW with decoupled weight decay (Loshchilov & Hutter), the update torch.optim.AdamW makes:
//   p -= lr * wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// Two implementations of the same update:
//   fused      at::_fused_adamw_, one call per parameter group, device and dtype (torch's
//              multi-tensor kernel on CUDA, its vectorised loop on CPU)
//   reference  the update above in plain LibTorch ops, one tensor at a time (what
//              torch::optim::AdamW does; the tests hold the fused one to it). The fused choice
//              still updates here a parameter whose gradient differs from it in dtype or
//              layout (zero3's bf16 rows keep fp32 gradients), which the kernel does not take.
// The state per parameter is what checkpoints hold: exp_avg, exp_avg_sq (the parameter's shape
// and dtype) and the step count. Parameters without a gradient are skipped, and get no state
// until their first update, as in torch.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <unordered_map>
#include <vector>

namespace dsalign {

struct AdamWGroup {
  std::vector<torch::Tensor> params;
  double weight_decay = 0.0;
};

struct AdamWSettings {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  bool fused = true;
};

class AdamW {
 public:
  AdamW(std::vector<AdamWGroup> groups, AdamWSettings settings);

  // One update of every parameter that has a gradient, at learning rate `lr`.
  void step(double lr);

  struct ParamState {
    torch::Tensor exp_avg, exp_avg_sq;
    int64_t step = 0;
    torch::Tensor step_tensor;  // fp32 scalar on the parameter's device: at::_fused_adamw_ counts in it
  };
  // Null before the parameter's first update.
  const ParamState* state(const torch::Tensor& param) const;
  // A checkpoint's state for `param` (moments copied to its device and dtype).
  void set_state(const torch::Tensor& param, const torch::Tensor& exp_avg, const torch::Tensor& exp_avg_sq, int64_t step);

  const AdamWSettings& settings() const { return settings_; }

 private:
  ParamState& state_for(const torch::Tensor& param);
  void fused_step(const AdamWGroup& group, double lr);
  void reference_step(const AdamWGroup& group, double lr);

  std::vector<AdamWGroup> groups_;
  AdamWSettings settings_;
  std::unordered_map<const c10::TensorImpl*, ParamState> state_;
};

}  // namespace dsalign
