// safetensors: 8-byte little-endian header length N, N bytes of JSON
// {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}, then the data
// (offsets relative to its start). https://github.com/huggingface/safetensors (format spec).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>

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
    const std::string where = map_.path().string();
    const size_t size = map_.size();
    if (size < 8) fail(where, ": not a safetensors file (", size, " bytes, shorter than its 8-byte header length)");
    uint64_t header_len = 0;
    std::memcpy(&header_len, map_.data(), 8);
    if (header_len > size - 8 || header_len > (uint64_t{100} << 20))
      fail(where, ": bad safetensors header length ", header_len, " for a file of ", size, " bytes (truncated or not safetensors)");
    json header;
    try {
      header = json::parse(map_.data() + 8, map_.data() + 8 + header_len);
    } catch (const json::parse_error& e) {
      fail(where, ": safetensors header is not valid JSON: ", first_line(e));
    }
    if (!header.is_object()) fail(where, ": safetensors header is not a JSON object");
    const size_t data_start = 8 + header_len;
    const size_t data_size = size - data_start;
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") continue;
      const std::string tensor_where = where + ": tensor '" + it.key() + "'";
      const json& info = it.value();
      if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
        fail(tensor_where, ": header entry needs dtype, shape and data_offsets");
      TensorEntry e;
      e.name = it.key();
      if (!info["dtype"].is_string()) fail(tensor_where, ": dtype must be a string");
      auto dtype = safetensors_dtype(info["dtype"].get<std::string>());
      if (!dtype) fail(tensor_where, ": unsupported dtype ", info["dtype"].dump());
      e.dtype = *dtype;
      if (!info["shape"].is_array()) fail(tensor_where, ": shape must be a list");
      int64_t numel = 1;
      for (const auto& d : info["shape"]) {
        if (!d.is_number_unsigned()) fail(tensor_where, ": shape ", info["shape"].dump(), " must hold non-negative integers");
        e.shape.push_back(d.get<int64_t>());
        if (e.shape.back() > 0 && numel > (int64_t{1} << 50) / e.shape.back()) fail(tensor_where, ": shape too large");
        numel *= e.shape.back();
      }
      const json& offsets = info["data_offsets"];
      if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
        fail(tensor_where, ": data_offsets must be [begin, end]");
      uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
      uint64_t nbytes = static_cast<uint64_t>(numel) * torch::elementSize(e.dtype);
      if (end < begin || end - begin != nbytes)
        fail(tensor_where, ": data_offsets [", begin, ", ", end, "] hold ", end - begin, " bytes, shape ",
             shape_string(e.shape), " needs ", nbytes);
      if (end > data_size)
        fail(tensor_where, ": data ends at byte ", end, " but the file holds ", data_size, " data bytes (truncated?)");
      e.data_offset = data_start + begin;
      e.storage_numel = numel;
      entries_.push_back(std::move(e));
    }
    // The header is an unordered map; keep file order so streaming reads move forward.
    std::sort(entries_.begin(), entries_.end(),
              [](const TensorEntry& a, const TensorEntry& b) { return a.data_offset < b.data_offset; });
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
