// PyTorch .bin checkpoints (torch.save's zip format, as deepseek-llm ships its weights):
// a zip whose `<archive>/data.pkl` is a pickle of the state dict and whose `<archive>/data/<key>`
// records hold the raw, uncompressed storages. The zip directory comes from LibTorch's
// PyTorchStreamReader; the pickle is read by model/torch_pickle, which builds no Python objects,
// so an untrusted file can name no code to run.
#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <map>

#include "model/torch_pickle.h"
#include "model/weight_file.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace {

class TorchBinFile final : public WeightFile {
 public:
  explicit TorchBinFile(const std::filesystem::path& path) : map_(path) {
    const std::string where = path.string();
    if (map_.size() < 4 || std::memcmp(map_.data(), "PK\x03\x04", 4) != 0)
      fail(where, ": not a zip-format torch.save file (legacy pre-1.6 format or not a checkpoint; "
                  "re-save it with torch.save from torch >= 1.6, or convert it to safetensors)");
    try {
      caffe2::serialize::PyTorchStreamReader reader(path.string());
      auto [pickle_data, pickle_size] = reader.getRecord("data.pkl");
      const std::vector<PickledTensor> tensors =
          read_state_dict_pickle(static_cast<const uint8_t*>(pickle_data.get()), pickle_size, where);
      if (reader.hasRecord("byteorder")) {
        auto [order, n] = reader.getRecord("byteorder");
        if (std::string(static_cast<const char*>(order.get()), n) != "little")
          fail(where, ": big-endian checkpoints are not supported");
      }
      std::map<std::string, std::pair<size_t, size_t>> records;  // storage key -> offset, size
      for (const PickledTensor& t : tensors) {
        auto rec = records.find(t.storage_key);
        if (rec == records.end()) {
          std::string record = "data/" + t.storage_key;
          if (!reader.hasRecord(record)) fail(where, ": storage record '", record, "' for '", t.name, "' is missing");
          rec = records.emplace(t.storage_key, std::make_pair(reader.getRecordOffset(record), reader.getRecordSize(record))).first;
        }
        auto [offset, size] = rec->second;
        TensorEntry e;
        e.name = t.name;
        e.dtype = *safetensors_dtype(torch_storage_dtype(t.storage_type));
        e.shape = t.shape;
        e.stride = t.stride;
        e.data_offset = offset;
        e.storage_offset = t.storage_offset;
        e.storage_numel = t.storage_numel;
        const size_t elem = torch::elementSize(e.dtype);
        if (t.storage_numel < 0 || static_cast<size_t>(t.storage_numel) > size / elem || offset + size > map_.size())
          fail(where, ": storage of '", e.name, "' is shorter than its ", t.storage_numel, " elements (truncated file?)");
        int64_t extent = e.storage_offset;  // last element index the view touches
        bool overflow = false;
        for (size_t d = 0; d < e.shape.size(); ++d) {
          if (e.shape[d] < 0 || e.stride[d] < 0) fail(where, ": tensor '", e.name, "' has a negative size or stride");
          if (e.shape[d] == 0) extent = -1;
          int64_t reach = 0;
          if (extent >= 0)
            overflow |= __builtin_mul_overflow(e.shape[d] - 1, e.stride[d], &reach) || __builtin_add_overflow(extent, reach, &extent);
        }
        if (e.storage_offset < 0 || overflow || extent >= t.storage_numel)
          fail(where, ": tensor '", e.name, "' reaches past its storage of ", t.storage_numel, " elements");
        entries_.push_back(std::move(e));
      }
    } catch (const c10::Error& e) {
      fail(where, ": cannot read the torch.save zip: ", first_line(e));
    }
    std::sort(entries_.begin(), entries_.end(),
              [](const TensorEntry& a, const TensorEntry& b) { return a.data_offset < b.data_offset; });
  }

  const std::filesystem::path& path() const override { return map_.path(); }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  torch::Tensor view(const TensorEntry& e) const override {
    torch::Tensor storage = torch::from_blob(const_cast<uint8_t*>(map_.data()) + e.data_offset, {e.storage_numel},
                                             torch::TensorOptions().dtype(e.dtype));
    return storage.as_strided(e.shape, e.stride, e.storage_offset);
  }
  void release(const TensorEntry& e) const override {
    map_.release(e.data_offset, static_cast<size_t>(e.storage_numel) * torch::elementSize(e.dtype));
  }

 private:
  MappedFile map_;
  std::vector<TensorEntry> entries_;
};

}  // namespace

std::unique_ptr<WeightFile> open_torch_bin(const std::filesystem::path& path) {
  return std::make_unique<TorchBinFile>(path);
}

}  // namespace dsalign
