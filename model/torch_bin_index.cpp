#include "model/torch_bin_index.h"

#include <cstring>
#include <map>

#include "model/safetensors_header.h"
#include "model/zip_directory.h"
#include "util/error.h"

namespace dsalign {
namespace {

// The last element index a view reaches (-1 for an empty view); an error on negative sizes or
// strides and on overflow.
int64_t view_extent(const PickledTensor& t, const std::string& where) {
  if (t.storage_offset < 0) fail(where, ": tensor '", t.name, "' has a negative storage offset");
  int64_t extent = t.storage_offset;
  for (size_t d = 0; d < t.shape.size(); ++d) {
    if (t.shape[d] < 0 || t.stride[d] < 0) fail(where, ": tensor '", t.name, "' has a negative size or stride");
    if (t.shape[d] == 0) return -1;
  }
  for (size_t d = 0; d < t.shape.size(); ++d) {
    int64_t reach = 0;
    if (__builtin_mul_overflow(t.shape[d] - 1, t.stride[d], &reach) || __builtin_add_overflow(extent, reach, &extent))
      fail(where, ": tensor '", t.name, "' has a shape and strides too large to address");
  }
  return extent;
}

}  // namespace

std::vector<BinTensor> read_torch_bin_index(const uint8_t* data, size_t size, const std::string& where) {
  if (size < 4 || std::memcmp(data, "PK\x03\x04", 4) != 0)
    fail(where, ": not a zip-format torch.save file (legacy pre-1.6 format or not a checkpoint; "
                "re-save it with torch.save from torch >= 1.6, or convert it to safetensors)");
  // torch.save puts every record under one top folder named after the file it saved to.
  std::map<std::string, ZipRecord> records;
  std::string archive;
  for (ZipRecord& r : read_zip_directory(data, size, where)) {
    const size_t slash = r.name.find('/');
    if (slash == std::string::npos) continue;
    if (archive.empty()) archive = r.name.substr(0, slash);
    if (r.name.compare(0, slash, archive) == 0) records.emplace(r.name.substr(slash + 1), std::move(r));
  }
  auto record = [&](const std::string& name) -> const ZipRecord* {
    auto it = records.find(name);
    if (it == records.end()) return nullptr;
    if (!it->second.stored) fail(where, ": zip record '", name, "' is compressed (torch.save stores records uncompressed)");
    return &it->second;
  };
  const ZipRecord* pickle = record("data.pkl");
  if (!pickle) fail(where, ": no data.pkl record (not a torch.save checkpoint)");
  if (const ZipRecord* order = record("byteorder"))
    if (std::string(reinterpret_cast<const char*>(data + order->offset), order->size) != "little")
      fail(where, ": big-endian checkpoints are not supported");
  std::vector<BinTensor> out;
  for (PickledTensor& t : read_state_dict_pickle(data + pickle->offset, pickle->size, where)) {
    const std::string key = "data/" + t.storage_key;
    const ZipRecord* storage = record(key);
    if (!storage) fail(where, ": storage record '", key, "' for '", t.name, "' is missing");
    BinTensor b;
    b.dtype = torch_storage_dtype(t.storage_type);
    const size_t element = safetensors_element_size(b.dtype);
    if (element == 0) fail(where, ": tensor '", t.name, "' has unsupported storage type ", t.storage_type);
    if (t.storage_numel < 0 || static_cast<uint64_t>(t.storage_numel) > storage->size / element)
      fail(where, ": storage of '", t.name, "' is shorter than its ", t.storage_numel, " elements (truncated file?)");
    if (view_extent(t, where) >= t.storage_numel)
      fail(where, ": tensor '", t.name, "' reaches past its storage of ", t.storage_numel, " elements");
    b.data_offset = storage->offset;
    b.tensor = std::move(t);
    out.push_back(std::move(b));
  }
  return out;
}

}  // namespace dsalign
