// Where each tensor of a torch.save checkpoint lies, read without LibTorch (so it can be fuzzed):
// the zip directory (model/zip_directory), the state-dict pickle (model/torch_pickle) and the
// storage records, with every view checked to stay inside its record and the file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "model/torch_pickle.h"

namespace dsalign {

struct BinTensor {
  PickledTensor tensor;
  std::string dtype;         // safetensors' name: "F32", "BF16", ...
  uint64_t data_offset = 0;  // of its storage record from the start of the file
};

// The tensors of the `size`-byte torch.save zip at `data`, in pickle order. Errors name `where`:
// not a zip or a legacy (pre-1.6) file, no data.pkl, compressed or missing storage records,
// big-endian files, views that reach past their storage.
std::vector<BinTensor> read_torch_bin_index(const uint8_t* data, size_t size, const std::string& where);

}  // namespace dsalign
