// The host memory a training checkpoint is copied into before a background thread writes it
// (issue 17). Its buffers are kept from one checkpoint to the next: a fresh 84 GB snapshot of a 7B
// model's fp32 weights and AdamW state would take a page fault per 4 KiB (and the kernel's zeroing
// of every page) inside the step loop each time, where a kept buffer is only copied into. With
// `pin`, buffers for GPU tensors are page-locked (model/host_buffer) and filled by asynchronous
// copies that finish() waits for.
//
// A kept buffer is reused by the next snapshot, so a snapshot must not start before the write of
// the previous one has ended: CheckpointWriter::staging() waits for it.
#pragma once
#include <torch/torch.h>

#include <map>
#include <set>
#include <string>

namespace dsalign {

class HostStaging {
 public:
  // `pin`: buffers for GPU tensors are page-locked (worth it only when they are kept).
  explicit HostStaging(bool pin = true) : pin_(pin) {}
  ~HostStaging();  // waits for copies still landing in its buffers
  HostStaging(const HostStaging&) = delete;
  HostStaging& operator=(const HostStaging&) = delete;

  // A contiguous host copy of `source` (CPU or GPU, any dtype) in the buffer kept under `key`:
  // made on first use, remade when the shape or dtype changed. Until finish(), a copy from a GPU
  // may still be in flight.
  torch::Tensor copy(const std::string& key, const torch::Tensor& source);
  // Waits for the copies from GPUs to land (on each device copied from).
  void finish();
  // Lets every buffer go (those a snapshot still holds live on with it).
  void release();
  // Host bytes the kept buffers hold.
  int64_t bytes() const;

 private:
  struct Buffer {
    torch::Tensor tensor;
    bool pinned = false;
  };
  bool pin_;
  std::map<std::string, Buffer> buffers_;
  std::set<int64_t> devices_pending_;  // GPUs with copies in flight
};

}  // namespace dsalign
