// A file of named tensors on disk (safetensors or a PyTorch .bin), memory-mapped: entries()
// lists what it holds, view() returns a zero-copy CPU tensor over the mapped bytes, release()
// drops those pages from the resident set once copied. Readers validate everything the header
// claims against the file before any view is made, so a bad file is an Error, never a crash.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace dsalign {

struct TensorEntry {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  std::vector<int64_t> stride;   // in elements; contiguous for safetensors
  size_t data_offset = 0;        // byte offset in the file of the storage's first element
  int64_t storage_offset = 0;    // in elements, from data_offset
  int64_t storage_numel = 0;     // elements available from data_offset
};

class WeightFile {
 public:
  virtual ~WeightFile() = default;
  virtual const std::filesystem::path& path() const = 0;
  virtual const std::vector<TensorEntry>& entries() const = 0;
  virtual torch::Tensor view(const TensorEntry& entry) const = 0;
  virtual void release(const TensorEntry& entry) const = 0;
};

std::unique_ptr<WeightFile> open_safetensors(const std::filesystem::path& path);
std::unique_ptr<WeightFile> open_torch_bin(const std::filesystem::path& path);

// A tensor to be written: its header facts up front, its data produced only when its turn comes
// (so a writer never holds more than one converted tensor, and `dsalign init` can generate a
// 67B model tensor by tensor). data() is called once per tensor, in order.
struct TensorToWrite {
  std::string name;
  std::vector<int64_t> shape;
  torch::ScalarType dtype;  // on disk; data() is converted to it
  std::function<torch::Tensor()> data;
};

// Writes one safetensors file, under a temporary name renamed into place when complete.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors);
// Tensors (any device, any dtype; converted to `dtype` unless it is Undefined).
void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
                       torch::ScalarType dtype = torch::ScalarType::Undefined);

// Reads every tensor of a safetensors file into owned CPU tensors (small files: test vectors,
// logits). Keys in file order.
std::vector<std::pair<std::string, torch::Tensor>> read_safetensors(const std::filesystem::path& path);

// "F32", "BF16", ... <-> ScalarType; unknown names give nullopt.
std::optional<torch::ScalarType> safetensors_dtype(const std::string& name);
std::string safetensors_dtype_name(torch::ScalarType dtype);

}  // namespace dsalign
