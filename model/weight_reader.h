// Reads checkpoint tensors straight into their destination tensors with pread(2) in large blocks
// from several threads (issue 17). Copying from a memory map instead takes a page fault per
// 4 KiB on the map and another on the fresh destination (6.7 million for a 7B model); here the
// file is never mapped (its pages stay in the page cache, outside the process), each destination
// larger than a huge page is advised to use huge pages, and a block is one system call. When the
// file's dtype is the destination's, a block lands in the destination itself; otherwise (bf16 on
// disk, fp32 parameters) each thread reads into its own block-sized buffer and converts from
// there, so host memory beyond the destinations is one block per thread. GPU destinations, with
// WeightReadOptions::device_staging, go through each thread's pinned ring (model/device_upload).
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <vector>

#include "model/weight_file.h"

namespace dsalign {

// Rows [first_row, first_row + into.size(0)) of `entry` into `into` (a contiguous CPU or, with
// device_staging, GPU tensor of the entry's shape, or of a range of its rows: a rank's slice).
// Any floating dtype.
struct TensorRead {
  const TensorEntry* entry = nullptr;
  torch::Tensor into;
  int64_t first_row = 0;
};

struct WeightReadOptions {
  bool pread = true;               // false: copy from the memory map (the earlier way; bench/bench_load compares)
  int64_t threads = 0;             // 0: the hardware threads, at most 8
  int64_t block_bytes = 16 << 20;  // what one pread moves at most
  bool huge_pages = true;          // advise huge pages for the destinations
  // Leave a CPU parameter whose dtype the file has on a private, copy-on-write mapping of the
  // file instead of reading it: no copy and no load time beyond the first touch of each page, as
  // transformers does. For models that are not trained (eval, generate, export, a frozen
  // reference): an optimizer step would copy every page it writes.
  bool map_same_dtype = false;
  // GPU destinations read in blocks into pinned host memory and copied asynchronously, several
  // threads at a time (model/device_upload), instead of copied from the memory map one tensor at
  // a time. Off until it has passed on a GPU (scripts/gpu_check.sh runs its test and benchmark).
  bool device_staging = false;
};

// Whether read_tensors can serve this read: the entry's elements lie contiguously in the file and
// `into` is a contiguous CPU tensor, or a GPU one with options.device_staging. Others go through
// WeightFile::view().
bool readable_by_pread(const TensorEntry& entry, const torch::Tensor& into, const WeightReadOptions& options = {});

// One request the slow way, for what readable_by_pread refuses (a GPU destination, a .bin view
// that is not contiguous): a copy from the file's memory map, whose pages are then released.
void copy_from_mapping(const WeightFile& file, const TensorRead& read);

// Reads every request from `file` (the checkpoint file the entries came from). An error names the
// file, the tensor and the byte offset.
void read_tensors(const std::filesystem::path& file, const std::vector<TensorRead>& reads, const WeightReadOptions& options);

}  // namespace dsalign
