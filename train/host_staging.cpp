#include "train/host_staging.h"

#include "model/host_buffer.h"

namespace dsalign {

torch::Tensor HostStaging::copy(const std::string& key, const torch::Tensor& source) {
  torch::NoGradGuard no_grad;
  torch::Tensor& buffer = buffers_[key];
  if (!buffer.defined() || buffer.sizes() != source.sizes() || buffer.scalar_type() != source.scalar_type())
    buffer = host_buffer(source.sizes(), source.scalar_type(), /*pinned=*/source.is_cuda());
  const bool from_device = source.is_cuda();
  buffer.copy_(source.detach(), /*non_blocking=*/from_device);
  device_copies_pending_ = device_copies_pending_ || from_device;
  return buffer;
}

void HostStaging::finish() {
  if (!device_copies_pending_) return;
  torch::cuda::synchronize();
  device_copies_pending_ = false;
}

int64_t HostStaging::bytes() const {
  int64_t total = 0;
  for (const auto& [key, buffer] : buffers_) total += static_cast<int64_t>(buffer.nbytes());
  return total;
}

}  // namespace dsalign
