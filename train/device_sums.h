// Sums of a few figures over a step's micro-batches, kept where the figures are computed (on a
// GPU: no host synchronisation per micro-batch) and read once.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace dsalign {

class DeviceSums {
 public:
  // values: [k] of any float dtype, on any device; every call the same k (accumulated in fp64).
  void add(const torch::Tensor& values) {
    torch::Tensor v = values.detach().to(torch::kFloat64).reshape({-1});
    if (sums_.defined())
      sums_.add_(v);
    else
      sums_ = v.clone();
  }
  // The sums (k zeros when nothing was added); synchronises with the device once.
  std::vector<double> read(size_t k) const {
    if (!sums_.defined()) return std::vector<double>(k, 0.0);
    torch::Tensor host = sums_.cpu().contiguous();
    return std::vector<double>(host.data_ptr<double>(), host.data_ptr<double>() + host.numel());
  }

 private:
  torch::Tensor sums_;
};

}  // namespace dsalign
