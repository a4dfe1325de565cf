// The safetensors header, parsed and checked without LibTorch (so it can be fuzzed): 8-byte
// little-endian length N, N bytes of JSON {name: {"dtype", "shape", "data_offsets": [begin, end]},
// "__metadata__": {...}}, then the data, offsets relative to its start.
// https://github.com/huggingface/safetensors (format spec).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dsalign {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // "F32", "BF16", ...
  std::vector<int64_t> shape;
  int64_t numel = 0;
  uint64_t begin = 0, end = 0;  // within the data section
  uint64_t file_offset = 0;     // begin from the start of the file
};

// Bytes per element of a safetensors dtype name; 0 for names dsalign does not read.
size_t safetensors_element_size(const std::string& dtype);

// The entries of the `size`-byte file at `data`, in file order. Errors name `where` and the
// tensor: a header longer than the file, bad JSON, a missing or mistyped field, an unknown
// dtype, a shape whose bytes differ from its offsets, data past the end, tensors that overlap.
std::vector<SafetensorsEntry> parse_safetensors_header(const uint8_t* data, size_t size, const std::string& where);

}  // namespace dsalign
