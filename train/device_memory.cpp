#include "train/device_memory.h"

#ifdef DSALIGN_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "util/files.h"

namespace dsalign {

double peak_memory_bytes(const torch::Device& device) {
#ifdef DSALIGN_WITH_CUDA
  if (device.is_cuda()) {
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    return static_cast<double>(stats.allocated_bytes[0].peak);
  }
#endif
  return static_cast<double>(host_memory().peak_resident_bytes);
}

void reset_peak_memory(const torch::Device& device) {
#ifdef DSALIGN_WITH_CUDA
  if (device.is_cuda()) {
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
    return;
  }
#endif
  reset_peak_host_memory();
}

}  // namespace dsalign
