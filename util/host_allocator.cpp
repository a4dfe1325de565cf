#include "util/host_allocator.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace dsalign {

void keep_freed_memory_for_reuse() {
#if defined(__GLIBC__)
  constexpr int kMmapThreshold = 1 << 30;         // blocks from 1 GiB up still get their own mapping
  constexpr int kTrimThreshold = 1 << 30;         // give back heap tops only beyond 1 GiB free
  constexpr int kTopPad = 64 << 20;               // and grow the heap 64 MiB at a time
  ::mallopt(M_MMAP_THRESHOLD, kMmapThreshold);
  ::mallopt(M_TRIM_THRESHOLD, kTrimThreshold);
  ::mallopt(M_TOP_PAD, kTopPad);
#endif
}

}  // namespace dsalign
