#include "model/host_buffer.h"

#include <sys/mman.h>

#include <cstdlib>
#include <new>

#include "util/error.h"

#ifdef DSALIGN_WITH_CUDA
#include <cuda_runtime_api.h>
#endif

namespace dsalign {
namespace {

constexpr size_t kHugePage = size_t{2} << 20, kPage = 4096;

}  // namespace

torch::Tensor host_buffer(at::IntArrayRef sizes, torch::ScalarType dtype, bool pinned) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * torch::elementSize(dtype);
  // Whole huge pages for what fills at least one, whole pages (which page-locking works in) below.
  const size_t align = bytes >= kHugePage ? kHugePage : kPage;
  const size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
  void* data = nullptr;
  if (::posix_memalign(&data, align, rounded) != 0)
    fail("cannot allocate a host buffer of ", bytes, " bytes (out of host memory?)");
  if (align == kHugePage) ::madvise(data, rounded, MADV_HUGEPAGE);  // a hint; ignored without transparent huge pages
  bool registered = false;
#ifdef DSALIGN_WITH_CUDA
  if (pinned && torch::cuda::is_available()) {
    registered = ::cudaHostRegister(data, rounded, cudaHostRegisterDefault) == cudaSuccess;
    if (!registered) (void)::cudaGetLastError();  // clear it: a refusal leaves ordinary memory
  }
#else
  (void)pinned;
#endif
  auto release = [registered](void* p) {
#ifdef DSALIGN_WITH_CUDA
    if (registered) (void)::cudaHostUnregister(p);
#else
    (void)registered;
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
