#include "train/host_staging.h"

#include "model/host_buffer.h"

namespace dsalign {

HostStaging::~HostStaging() {
  try {
    finish();
  } catch (...) {  // a CUDA error while unwinding: nothing better to do than not to crash
  }
}

torch::Tensor HostStaging::copy(const std::string& key, const torch::Tensor& source) {
  torch::NoGradGuard no_grad;
  const bool pinned = pin_ && source.is_cuda();
  auto it = buffers_.find(key);
  if (it == buffers_.end() || it->second.tensor.sizes() != source.sizes() ||
      it->second.tensor.scalar_type() != source.scalar_type() || it->second.pinned != pinned) {
    if (it != buffers_.end()) finish();  // the buffer replaced may still be a copy's destination
    torch::Tensor made = host_buffer(source.sizes(), source.scalar_type(),
                                     pinned ? std::optional<torch::Device>(source.device()) : std::nullopt);
    it = buffers_.insert_or_assign(key, Buffer{made, pinned}).first;
  }
  torch::Tensor& buffer = it->second.tensor;
  buffer.copy_(source.detach(), /*non_blocking=*/source.is_cuda());
  if (source.is_cuda()) devices_pending_.insert(source.device().index() < 0 ? 0 : source.device().index());
  return buffer;
}

void HostStaging::finish() {
  // The copies run on each device's current stream; a device-wide wait covers them.
  for (int64_t device : devices_pending_) torch::cuda::synchronize(device);
  devices_pending_.clear();
}

void HostStaging::release() {
  finish();
  buffers_.clear();
}

int64_t HostStaging::bytes() const {
  int64_t total = 0;
  for (const auto& [key, buffer] : buffers_) total += static_cast<int64_t>(buffer.tensor.nbytes());
  return total;
}

}  // namespace dsalign
