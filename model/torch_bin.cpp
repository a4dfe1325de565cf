// PyTorch .bin checkpoints (torch.save's zip format, as deepseek-llm ships its weights):
// a zip whose `<archive>/data.pkl` is a pickle of the state dict and whose `<archive>/data/<key>`
// records hold the raw, uncompressed storages. model/torch_bin_index reads the zip directory and
// the pickle without LibTorch and builds no Python objects, so an untrusted file can name no code
// to run; here the checked views become tensors over the memory map.
#include <algorithm>

#include "model/torch_bin_index.h"
#include "model/weight_file.h"
#include "util/files.h"

namespace dsalign {
namespace {

class TorchBinFile final : public WeightFile {
 public:
  explicit TorchBinFile(const std::filesystem::path& path) : map_(path) {
    for (BinTensor& b : read_torch_bin_index(map_.data(), map_.size(), path.string())) {
      TensorEntry e;
      e.name = std::move(b.tensor.name);
      e.dtype = *safetensors_dtype(b.dtype);
      e.shape = std::move(b.tensor.shape);
      e.stride = std::move(b.tensor.stride);
      e.data_offset = b.data_offset;
      e.storage_offset = b.tensor.storage_offset;
      e.storage_numel = b.tensor.storage_numel;
      entries_.push_back(std::move(e));
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
