#include "data/id_list.h"

#include <charconv>
#include <filesystem>

#include "util/error.h"
#include "util/files.h"

namespace dsalign {

bool looks_like_id_list(const std::string& spec) {
  bool digit = false;
  for (char c : spec) {
    if (c >= '0' && c <= '9') digit = true;
    else if (c != ',' && c != ' ' && c != '-' && c != '\t') return false;
  }
  return digit;
}

std::vector<std::vector<int64_t>> parse_id_rows(const std::string& text, const std::string& source, int64_t vocab_size) {
  std::vector<std::vector<int64_t>> rows;
  size_t line_start = 0;
  for (int64_t line_number = 1; line_start < text.size() || line_number == 1; ++line_number) {
    size_t line_end = text.find('\n', line_start);
    if (line_end == std::string::npos) line_end = text.size();
    std::vector<int64_t> row;
    size_t at = line_start;
    while (at < line_end) {
      const char c = text[at];
      if (c == ',' || c == ' ' || c == '\t' || c == '\r') {
        ++at;
        continue;
      }
      size_t end = at;
      while (end < line_end && text[end] != ',' && text[end] != ' ' && text[end] != '\t' && text[end] != '\r') ++end;
      const std::string token = text.substr(at, std::min<size_t>(end - at, 40));
      int64_t id = -1;
      const auto [next, error] = std::from_chars(text.data() + at, text.data() + end, id);
      if (error != std::errc() || next != text.data() + end)
        fail(source, ":", line_number, ": '", token, end - at > 40 ? "...'" : "'", " is not a token id");
      if (id < 0 || id >= vocab_size)
        fail(source, ":", line_number, ": token id ", id, " is outside the vocabulary (0..", vocab_size - 1, ")");
      row.push_back(id);
      at = end;
    }
    if (!row.empty()) {
      if (!rows.empty() && rows.front().size() != row.size())
        fail(source, ":", line_number, ": row has ", row.size(), " ids, the first row has ", rows.front().size(),
             " (rows must have equal length)");
      rows.push_back(std::move(row));
    }
    line_start = line_end + 1;
  }
  if (rows.empty()) fail(source, ": no token ids");
  return rows;
}

std::vector<std::vector<int64_t>> read_id_rows(const std::string& spec, const std::string& argument, int64_t vocab_size) {
  if (looks_like_id_list(spec)) return parse_id_rows(spec, argument, vocab_size);
  std::error_code ec;
  const std::filesystem::path path(spec);
  const auto status = std::filesystem::status(path, ec);
  if (ec || !std::filesystem::exists(status)) {
    // Not a file, but written as a list ("1,x"): say which id is wrong.
    if (spec.find(',') != std::string::npos && spec.find('/') == std::string::npos)
      return parse_id_rows(spec, argument, vocab_size);
    fail(argument, " ", spec.substr(0, 200), spec.size() > 200 ? "...": "",
         ": no such file (expected a file of token ids, or ids like 1,2,3)");
  }
  if (std::filesystem::is_directory(status))
    fail(argument, " ", spec.substr(0, 200), ": is a directory (expected a file of token ids)");
  return parse_id_rows(read_text_file(path), spec, vocab_size);
}

}  // namespace dsalign
