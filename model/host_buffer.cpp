#include "model/host_buffer.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>

#include "util/error.h"

#ifdef DSALIGN_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace dsalign {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

}  // namespace

torch::Tensor host_buffer(at::IntArrayRef sizes, torch::ScalarType dtype, std::optional<torch::Device> pinned_for) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * torch::elementSize(dtype);
  // Whole huge pages for what fills at least one; below, whole pages (what page-locking works in:
  // two buffers sharing a page could not both be registered).
  const auto page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t align = bytes >= kHugePage ? kHugePage : page;
  const size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
  void* data = nullptr;
  if (::posix_memalign(&data, align, rounded) != 0)
    fail("cannot allocate a host buffer of ", bytes, " bytes (out of host memory?)");
  if (align == kHugePage) ::madvise(data, rounded, MADV_HUGEPAGE);  // a hint; ignored without transparent huge pages
  int registered_on = -1;  // the device whose context registered it
#ifdef DSALIGN_WITH_CUDA
  if (pinned_for && pinned_for->is_cuda() && torch::cuda::is_available()) {
    const int device = pinned_for->index() < 0 ? 0 : pinned_for->index();
    const c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(device));  // not a stray context on GPU 0
    // Portable: pinned for every context, should another device copy from it.
    if (::cudaHostRegister(data, rounded, cudaHostRegisterPortable) == cudaSuccess)
      registered_on = device;
    else
      (void)::cudaGetLastError();  // clear it: a refusal leaves ordinary memory
  }
#else
  (void)pinned_for;
#endif
  auto release = [registered_on](void* p) {
#ifdef DSALIGN_WITH_CUDA
    if (registered_on >= 0) {  // runtime calls only: a deleter must not throw
      int current = -1;
      const bool switched = ::cudaGetDevice(&current) == cudaSuccess && current != registered_on &&
                            ::cudaSetDevice(registered_on) == cudaSuccess;
      // A failure is cleared, not left for a later kernel-launch check to find.
      if (::cudaHostUnregister(p) != cudaSuccess) (void)::cudaGetLastError();
      if (switched) (void)::cudaSetDevice(current);
    }
#else
    (void)registered_on;
#endif
    std::free(p);
  };
  return torch::from_blob(data, sizes, release, torch::TensorOptions().dtype(dtype));
}

bool is_pinned_host(const torch::Tensor& t) {
#ifdef DSALIGN_WITH_CUDA
  if (!t.defined() || !t.device().is_cpu() || !torch::cuda::is_available()) return false;
  cudaPointerAttributes attributes{};
  if (::cudaPointerGetAttributes(&attributes, t.data_ptr()) != cudaSuccess) {
    (void)::cudaGetLastError();
    return false;
  }
  return attributes.type == cudaMemoryTypeHost;
#else
  (void)t;
  return false;
#endif
}

}  // namespace dsalign
