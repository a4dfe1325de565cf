#include "model/device_upload.h"

#include "model/host_buffer.h"
#include "util/error.h"

#ifdef DSALIGN_WITH_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#endif

namespace dsalign {

#ifdef DSALIGN_WITH_CUDA

namespace {
constexpr int kSlots = 2;  // one block read while the other is copied
}  // namespace

struct DeviceUpload::Ring {
  c10::cuda::CUDAStream stream;
  torch::Tensor pinned[kSlots];
  at::cuda::CUDAEvent copied[kSlots];  // the copy out of each pinned block has finished
  torch::Tensor on_device;             // a block in the file's dtype, converted from there
  int slot = -1;
};

DeviceUpload::DeviceUpload(const torch::Device& device, size_t block_bytes) : device_(device) {
  if (!device.is_cuda() || !torch::cuda::is_available()) fail("DeviceUpload: ", device.str(), " is not an available GPU");
  const auto index = static_cast<c10::DeviceIndex>(device.index() < 0 ? 0 : device.index());
  device_ = torch::Device(torch::kCUDA, index);
  const c10::cuda::CUDAGuard on_device(index);  // a reader thread's current device is 0 otherwise
  ring_ = std::unique_ptr<Ring>(new Ring{c10::cuda::getStreamFromPool(false, index), {}, {}, {}, -1});
  for (torch::Tensor& block : ring_->pinned) block = host_buffer({static_cast<int64_t>(block_bytes)}, torch::kUInt8, device_);
  const c10::cuda::CUDAStreamGuard on_stream(ring_->stream);
  ring_->on_device = torch::empty({static_cast<int64_t>(block_bytes)}, torch::TensorOptions().dtype(torch::kUInt8).device(device_));
}

DeviceUpload::~DeviceUpload() {
  // The pinned blocks must outlive the copies that read them. Runtime calls only: no throwing here.
  if (ring_ && ::cudaStreamSynchronize(ring_->stream.stream()) != cudaSuccess) (void)::cudaGetLastError();
}

void* DeviceUpload::next_block() {
  const c10::cuda::CUDAGuard on_device(device_.index());
  ring_->slot = (ring_->slot + 1) % kSlots;
  ring_->copied[ring_->slot].synchronize();  // returns at once if never recorded
  return ring_->pinned[ring_->slot].data_ptr();
}

void DeviceUpload::upload(const torch::Tensor& into, torch::ScalarType file_dtype) {
  torch::NoGradGuard no_grad;
  const c10::cuda::CUDAStreamGuard on_stream(ring_->stream);  // sets the device too
  const int64_t count = into.numel();
  const torch::Tensor block = torch::from_blob(ring_->pinned[ring_->slot].data_ptr(), {count}, torch::TensorOptions().dtype(file_dtype));
  if (into.scalar_type() == file_dtype) {
    into.copy_(block, /*non_blocking=*/true);
  } else {
    torch::Tensor staged = ring_->on_device.view(file_dtype).narrow(0, 0, count);
    staged.copy_(block, /*non_blocking=*/true);
    into.copy_(staged, /*non_blocking=*/true);  // the conversion, on the GPU, in stream order
  }
  ring_->copied[ring_->slot].record(ring_->stream);
}

void DeviceUpload::finish() {
  const c10::cuda::CUDAGuard on_device(device_.index());
  ring_->stream.synchronize();
}

#else

struct DeviceUpload::Ring {};

DeviceUpload::DeviceUpload(const torch::Device& device, size_t) : device_(device) {
  fail("DeviceUpload: dsalign was built without CUDA, so it cannot load onto ", device.str());
}
DeviceUpload::~DeviceUpload() = default;
void* DeviceUpload::next_block() { return nullptr; }
void DeviceUpload::upload(const torch::Tensor&, torch::ScalarType) {}
void DeviceUpload::finish() {}

#endif

}  // namespace dsalign
