// The pickle of a torch.save state dict, read without LibTorch (so it can be fuzzed) by a small
// interpreter that understands only what a state dict needs (dicts, tuples, ints, strings,
// _rebuild_tensor_v2, persistent storage ids) and builds no Python objects: nothing a file names is
// ever imported or run, and a file that names any global but torch's tensor-rebuilding functions
// and storage types is refused.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dsalign {

// One tensor of the state dict: a view (offset, shape, stride in elements) of a storage record.
struct PickledTensor {
  std::string name;
  std::string storage_key;   // the zip record data/<key>
  std::string storage_type;  // "torch.FloatStorage", "torch.BFloat16Storage", ...
  int64_t storage_numel = 0;
  int64_t storage_offset = 0;
  std::vector<int64_t> shape, stride;
};

// The element type of a storage type torch.save writes ("torch.FloatStorage" -> "F32", in
// safetensors' names); "" for any other name.
std::string torch_storage_dtype(const std::string& storage_type);

// The state dict in `data` (a data.pkl record), in pickle order. Errors name `where`.
std::vector<PickledTensor> read_state_dict_pickle(const uint8_t* data, size_t size, const std::string& where);

}  // namespace dsalign
