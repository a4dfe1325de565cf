#include "model/weight_reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

#include "model/device_upload.h"
#include "util/error.h"

namespace dsalign {
namespace {

constexpr uintptr_t kHugePage = uintptr_t{2} << 20;

// A run of elements of one request's destination, read with one pread.
struct Block {
  size_t read = 0;
  int64_t begin = 0, count = 0;  // in elements of the destination
};

int64_t row_elements(const TensorEntry& e) {
  int64_t n = 1;
  for (size_t i = 1; i < e.shape.size(); ++i) n *= e.shape[i];
  return n;
}

bool contiguous_in_file(const TensorEntry& e) {
  if (e.stride.empty()) return true;  // safetensors
  int64_t expected = 1;
  for (size_t i = e.shape.size(); i-- > 0;) {
    if (e.shape[i] != 1 && e.stride[i] != expected) return false;
    expected *= e.shape[i];
  }
  return true;
}

// Faults on the destination then take 2 MiB at a time where the kernel has a huge page to give
// (transparent huge pages in "madvise" mode, the usual default, need the hint). Only a hint: a
// kernel without them ignores it.
void advise_huge_pages(void* data, size_t bytes) {
  const uintptr_t begin = (reinterpret_cast<uintptr_t>(data) + kHugePage - 1) & ~(kHugePage - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + bytes) & ~(kHugePage - 1);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
}

class ReadFile {
 public:
  explicit ReadFile(const std::filesystem::path& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(path.string(), ": cannot open for reading: ", std::strerror(errno));
    ::posix_fadvise(fd_, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  ~ReadFile() { ::close(fd_); }
  ReadFile(const ReadFile&) = delete;
  ReadFile& operator=(const ReadFile&) = delete;

  void read_fully(void* into, size_t bytes, uint64_t offset, const std::string& tensor) const {
    auto* out = static_cast<uint8_t*>(into);
    while (bytes > 0) {
      const ssize_t n = ::pread(fd_, out, bytes, static_cast<off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) fail(path_.string(), ": reading tensor '", tensor, "' at byte ", offset, ": ", std::strerror(errno));
      if (n == 0) fail(path_.string(), ": ends at byte ", offset, " inside tensor '", tensor, "' (truncated?)");
      out += n;
      bytes -= static_cast<size_t>(n);
      offset += static_cast<uint64_t>(n);
    }
  }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
};

}  // namespace

bool readable_by_pread(const TensorEntry& entry, const torch::Tensor& into, const WeightReadOptions& options) {
  return into.defined() && (into.device().is_cpu() || (into.is_cuda() && options.device_staging)) &&
         into.is_contiguous() && at::isFloatingType(entry.dtype) && at::isFloatingType(into.scalar_type()) &&
         contiguous_in_file(entry);
}

void copy_from_mapping(const WeightFile& file, const TensorRead& read) {
  torch::Tensor source = file.view(*read.entry);
  if (read.into.sizes() != source.sizes()) source = source.narrow(0, read.first_row, read.into.size(0));
  read.into.copy_(source);
  file.release(*read.entry);
}

void read_tensors(const std::filesystem::path& path, const std::vector<TensorRead>& reads, const WeightReadOptions& options) {
  if (reads.empty()) return;
  const ReadFile file(path);
  std::vector<Block> blocks;
  for (size_t i = 0; i < reads.size(); ++i) {
    const TensorRead& r = reads[i];
    if (!readable_by_pread(*r.entry, r.into, options)) fail("read_tensors: '", r.entry->name, "' cannot be read with pread");
    if (options.huge_pages && r.into.is_cpu()) advise_huge_pages(r.into.data_ptr(), r.into.nbytes());
    const int64_t per_block =
        std::max<int64_t>(1, options.block_bytes / static_cast<int64_t>(torch::elementSize(r.entry->dtype)));
    for (int64_t begin = 0; begin < r.into.numel(); begin += per_block)
      blocks.push_back({i, begin, std::min(per_block, r.into.numel() - begin)});
  }
  const auto ring_block_bytes = static_cast<size_t>((options.block_bytes + 7) / 8 * 8);  // whole elements of any dtype
  // GPU destinations may still be being written by work queued on the caller's streams
  // (allocation, initialisation): the rings' own streams start after it.
  std::set<int64_t> devices;
  for (const TensorRead& r : reads)
    if (r.into.is_cuda()) devices.insert(r.into.device().index() < 0 ? 0 : r.into.device().index());
  for (int64_t device : devices) torch::cuda::synchronize(device);
  const int64_t hardware = std::max<int64_t>(1, std::thread::hardware_concurrency());
  const auto threads =
      static_cast<size_t>(std::min<int64_t>(options.threads > 0 ? options.threads : std::min<int64_t>(hardware, 8),
                                            static_cast<int64_t>(blocks.size())));
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto work = [&] {
    torch::NoGradGuard no_grad;    // grad mode is per thread; destinations are parameters
    std::vector<uint8_t> staging;  // conversions only: one block in the file's dtype
    std::unique_ptr<DeviceUpload> upload;  // GPU destinations: this thread's pinned ring
    try {
      for (size_t k = next++; k < blocks.size() && !failed; k = next++) {
        const Block& b = blocks[k];
        const TensorRead& r = reads[b.read];
        const TensorEntry& e = *r.entry;
        const auto element = static_cast<int64_t>(torch::elementSize(e.dtype));
        const uint64_t offset =
            e.data_offset + static_cast<uint64_t>((e.storage_offset + r.first_row * row_elements(e) + b.begin) * element);
        const auto bytes = static_cast<size_t>(b.count * element);
        if (r.into.is_cuda()) {
          if (!upload || upload->device() != r.into.device()) {  // a ring per device, one at a time
            if (upload) upload->finish();
            upload = std::make_unique<DeviceUpload>(r.into.device(), ring_block_bytes);
          }
          file.read_fully(upload->next_block(), bytes, offset, e.name);
          upload->upload(r.into.view({-1}).narrow(0, b.begin, b.count), e.dtype);
          continue;
        }
        if (r.into.scalar_type() == e.dtype) {
          file.read_fully(static_cast<uint8_t*>(r.into.data_ptr()) + b.begin * element, bytes, offset, e.name);
          continue;
        }
        staging.resize(bytes);
        file.read_fully(staging.data(), bytes, offset, e.name);
        r.into.view({-1}).narrow(0, b.begin, b.count).copy_(torch::from_blob(staging.data(), {b.count}, torch::TensorOptions().dtype(e.dtype)));
      }
      if (upload) upload->finish();
    } catch (...) {
      std::lock_guard<std::mutex> lock(error_mutex);
      if (!error) error = std::current_exception();
      failed = true;
    }
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < threads; ++t) helpers.emplace_back(work);
  work();
  for (std::thread& t : helpers) t.join();
  if (error) std::rethrow_exception(error);
}

}  // namespace dsalign
