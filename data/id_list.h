// Token ids given by a user: "1,2,3" on the command line, or a file with one row per line (ids
// separated by commas or spaces). Rows must have equal length and ids must be in the vocabulary.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace dsalign {

// True when `spec` can only be an id list: digits, commas, spaces and minus signs, with at least
// one digit. Decided on the string alone, so a list of any length is never tried as a path.
bool looks_like_id_list(const std::string& spec);

// Rows of ids parsed from `text`; errors name `source` and the line.
std::vector<std::vector<int64_t>> parse_id_rows(const std::string& text, const std::string& source, int64_t vocab_size);

// `spec` as a list or, failing that, as a file (and a comma-separated `spec` that is no file as a
// list again, to name its bad id); errors name `argument` (e.g. "--ids") and say what was
// expected (a missing file, a directory, an unreadable file, no ids).
std::vector<std::vector<int64_t>> read_id_rows(const std::string& spec, const std::string& argument, int64_t vocab_size);

}  // namespace dsalign
