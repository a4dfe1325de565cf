// The host memory a training checkpoint is copied into before a background thread writes it
// (issue 17). Its buffers are kept from one checkpoint to the next: a fresh 84 GB snapshot of a 7B
// model's fp32 weights and AdamW state would take a page fault per 4 KiB (and the kernel's zeroing
// of every page) inside the step loop each time, where a kept buffer is only copied into (three
// times faster on this project's CPU machine, bench/checkpoint_speed.sh). Buffers for GPU tensors
// are pinned (model/host_buffer) and filled by asynchronous copies that finish() waits for.
//
// A kept buffer is reused by the next snapshot, so a snapshot must not start before the write of
// the previous one has ended: CheckpointWriter::staging() waits for it.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>

namespace dsalign {

class HostStaging {
 public:
  // A contiguous host copy of `source` (CPU or GPU, any dtype) in the buffer kept under `key`:
  // made on first use, remade when the shape or dtype changed. Until finish(), a copy from a GPU
  // may still be in flight.
  torch::Tensor copy(const std::string& key, const torch::Tensor& source);
  // Waits for the copies from GPUs to land.
  void finish();
  // Host bytes the kept buffers hold.
  int64_t bytes() const;

 private:
  std::map<std::string, torch::Tensor> buffers_;
  bool device_copies_pending_ = false;
};

}  // namespace dsalign
