#include "model/safetensors_header.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "util/error.h"

namespace dsalign {

using nlohmann::json;

size_t safetensors_element_size(const std::string& dtype) {
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16") return 2;
  if (dtype == "I8" || dtype == "U8" || dtype == "BOOL") return 1;
  return 0;
}

namespace {

SafetensorsEntry parse_entry(const std::string& name, const json& info, size_t data_size, const std::string& where) {
  const std::string tensor_where = where + ": tensor '" + name.substr(0, 200) + "'";
  if (!info.is_object() || !info.contains("dtype") || !info.contains("shape") || !info.contains("data_offsets"))
    fail(tensor_where, ": header entry needs dtype, shape and data_offsets");
  SafetensorsEntry e;
  e.name = name;
  if (!info["dtype"].is_string()) fail(tensor_where, ": dtype must be a string");
  e.dtype = info["dtype"].get<std::string>();
  const size_t element = safetensors_element_size(e.dtype);
  if (element == 0) fail(tensor_where, ": unsupported dtype ", info["dtype"].dump().substr(0, 40));
  if (!info["shape"].is_array()) fail(tensor_where, ": shape must be a list");
  if (info["shape"].size() > 16) fail(tensor_where, ": shape has ", info["shape"].size(), " dimensions (at most 16)");
  int64_t numel = 1;
  for (const auto& d : info["shape"]) {
    if (!d.is_number_unsigned()) fail(tensor_where, ": shape must hold non-negative integers");
    const uint64_t size = d.get<uint64_t>();
    if (size > (uint64_t{1} << 50) || (size > 0 && numel > (int64_t{1} << 50) / static_cast<int64_t>(size)))
      fail(tensor_where, ": shape too large");
    e.shape.push_back(static_cast<int64_t>(size));
    numel *= static_cast<int64_t>(size);
  }
  e.numel = numel;
  const json& offsets = info["data_offsets"];
  if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned())
    fail(tensor_where, ": data_offsets must be [begin, end]");
  e.begin = offsets[0].get<uint64_t>();
  e.end = offsets[1].get<uint64_t>();
  const uint64_t nbytes = static_cast<uint64_t>(numel) * element;
  if (e.end < e.begin || e.end - e.begin != nbytes)
    fail(tensor_where, ": data_offsets [", e.begin, ", ", e.end, "] hold ", e.end < e.begin ? 0 : e.end - e.begin,
         " bytes, shape ", shape_string(e.shape), " needs ", nbytes);
  if (e.end > data_size)
    fail(tensor_where, ": data ends at byte ", e.end, " but the file holds ", data_size, " data bytes (truncated?)");
  return e;
}

}  // namespace

std::vector<SafetensorsEntry> parse_safetensors_header(const uint8_t* data, size_t size, const std::string& where) {
  if (size < 8) fail(where, ": not a safetensors file (", size, " bytes, shorter than its 8-byte header length)");
  uint64_t header_len = 0;
  std::memcpy(&header_len, data, 8);  // little-endian, as is every machine dsalign runs on
  if (header_len > size - 8 || header_len > (uint64_t{100} << 20))
    fail(where, ": bad safetensors header length ", header_len, " for a file of ", size, " bytes (truncated or not safetensors)");
  const json header = json::parse(data + 8, data + 8 + header_len, nullptr, false);
  if (header.is_discarded()) fail(where, ": safetensors header is not valid JSON");
  if (!header.is_object()) fail(where, ": safetensors header is not a JSON object");
  const size_t data_start = 8 + header_len, data_size = size - data_start;
  std::vector<SafetensorsEntry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    SafetensorsEntry e = parse_entry(it.key(), it.value(), data_size, where);
    e.file_offset = data_start + e.begin;
    entries.push_back(std::move(e));
  }
  // The header is an unordered map; keep file order so streaming reads move forward.
  std::sort(entries.begin(), entries.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  // Each tensor against the one reaching furthest before it (empty tensors overlap nothing).
  size_t furthest = 0;
  for (size_t i = 1; i < entries.size(); ++i) {
    const SafetensorsEntry &a = entries[furthest], &b = entries[i];
    if (b.end > b.begin && b.begin < a.end)
      fail(where, ": tensors '", a.name.substr(0, 200), "' (bytes ", a.begin, "..", a.end, ") and '", b.name.substr(0, 200),
           "' (bytes ", b.begin, "..", b.end, ") overlap");
    if (b.end > entries[furthest].end) furthest = i;
  }
  return entries;
}

}  // namespace dsalign
