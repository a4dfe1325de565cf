// One reader thread's way to a GPU for checkpoint loads (issue 17): blocks read from the file into
// a small ring of pinned host buffers and copied to the GPU asynchronously on the thread's own
// stream, so no host copy of the weights is ever made and reading the next block overlaps the
// copy of the last. A block of another dtype than its destination lands in a GPU buffer of the
// file's dtype first and is converted there (LibTorch's copy_ would convert on the host).
#pragma once
#include <torch/torch.h>

#include <memory>

namespace dsalign {

class DeviceUpload {
 public:
  // Pinned blocks of `block_bytes` for copies to `device`; an Error without CUDA. The caller has
  // finished its own work on the destinations (read_tensors synchronizes the device first).
  DeviceUpload(const torch::Device& device, size_t block_bytes);
  ~DeviceUpload();  // waits for copies still in flight (they read its pinned blocks); never throws
  DeviceUpload(const DeviceUpload&) = delete;
  DeviceUpload& operator=(const DeviceUpload&) = delete;

  // The next pinned block to read into, once no copy reads from it any more.
  void* next_block();
  // Copies the block next_block() gave last, `into.numel()` elements of dtype `file_dtype`, into
  // `into` (a contiguous piece of a GPU tensor), asynchronously.
  void upload(const torch::Tensor& into, torch::ScalarType file_dtype);
  // Waits for every copy.
  void finish();
  const torch::Device& device() const { return device_; }

 private:
  struct Ring;
  torch::Device device_;
  std::unique_ptr<Ring> ring_;
};

}  // namespace dsalign
