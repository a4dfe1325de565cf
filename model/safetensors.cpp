// safetensors: 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data
// (offsets relative to its start). https://github.com/huggingface/safetensors (format spec).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>

#include "model/safetensors_header.h"
#include "model/weight_file.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace {

using nlohmann::json;

struct DtypeName {
  const char* name;
  torch::ScalarType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F64", torch::kFloat64}, {"F32", torch::kFloat32}, {"F16", torch::kFloat16}, {"BF16", torch::kBFloat16},
    {"I64", torch::kInt64},   {"I32", torch::kInt32},   {"I16", torch::kInt16},   {"I8", torch::kInt8},
    {"U8", torch::kUInt8},    {"BOOL", torch::kBool},
};

class SafetensorsFile final : public WeightFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path) : map_(path) { parse(); }
  const std::filesystem::path& path() const override { return map_.path(); }
  const std::vector<TensorEntry>& entries() const override { return entries_; }
  torch::Tensor view(const TensorEntry& e) const override {
    return torch::from_blob(const_cast<uint8_t*>(map_.data()) + e.data_offset, e.shape,
                            torch::TensorOptions().dtype(e.dtype));
  }
  void release(const TensorEntry& e) const override {
    map_.release(e.data_offset, static_cast<size_t>(e.storage_numel) * torch::elementSize(e.dtype));
  }

 private:
  void parse() {
    for (const SafetensorsEntry& h : parse_safetensors_header(map_.data(), map_.size(), map_.path().string())) {
      TensorEntry e;
      e.name = h.name;
      e.dtype = *safetensors_dtype(h.dtype);
      e.shape = h.shape;
      e.data_offset = h.file_offset;
      e.storage_numel = h.numel;
      entries_.push_back(std::move(e));
    }
  }

  MappedFile map_;
  std::vector<TensorEntry> entries_;
};

}  // namespace

std::optional<torch::ScalarType> safetensors_dtype(const std::string& name) {
  for (const auto& d : kDtypes)
    if (name == d.name) return d.dtype;
  return std::nullopt;
}

std::string safetensors_dtype_name(torch::ScalarType dtype) {
  for (const auto& d : kDtypes)
    if (dtype == d.dtype) return d.name;
  fail("dtype ", c10::toString(dtype), " cannot be written to safetensors");
}

std::unique_ptr<WeightFile> open_safetensors(const std::filesystem::path& path) {
  return std::make_unique<SafetensorsFile>(path);
}

void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors) {
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  uint64_t offset = 0;
  for (const auto& t : tensors) {
    uint64_t numel = 1;
    for (int64_t d : t.shape) numel *= static_cast<uint64_t>(d);
    uint64_t nbytes = numel * torch::elementSize(t.dtype);
    header[t.name] = {{"dtype", safetensors_dtype_name(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // align the data to 8 bytes
  // Written under a temporary name and renamed, so a failed write never leaves a file that looks whole.
  std::filesystem::path tmp = path;
  tmp += ".tmp";
  std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
  if (!out) fail(path.string(), ": cannot open for writing");
  uint64_t header_len = text.size();
  out.write(reinterpret_cast<const char*>(&header_len), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const auto& t : tensors) {
    torch::Tensor cpu = t.data().detach().to(torch::kCPU, t.dtype).contiguous();
    if (cpu.sizes().vec() != t.shape)
      fail(path.string(), ": tensor '", t.name, "' has shape ", shape_string(cpu.sizes().vec()), ", its header says ",
           shape_string(t.shape));
    out.write(static_cast<const char*>(cpu.data_ptr()), static_cast<std::streamsize>(cpu.nbytes()));
    if (!out) break;
  }
  out.flush();
  if (!out) {
    out.close();
    std::filesystem::remove(tmp);
    fail(path.string(), ": write failed (disk full?)");
  }
  out.close();
  std::filesystem::rename(tmp, path);
}

void write_safetensors(const std::filesystem::path& path,
                       const std::vector<std::pair<std::string, torch::Tensor>>& tensors, torch::ScalarType dtype) {
  std::vector<TensorToWrite> specs;
  for (const auto& [name, t] : tensors)
    specs.push_back({name, t.sizes().vec(), dtype == torch::ScalarType::Undefined ? t.scalar_type() : dtype,
                     [t] { return t; }});
  write_safetensors(path, specs);
}

std::vector<std::pair<std::string, torch::Tensor>> read_safetensors(const std::filesystem::path& path) {
  auto file = open_safetensors(path);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& e : file->entries()) out.emplace_back(e.name, file->view(e).clone());
  return out;
}

}  // namespace dsalign
