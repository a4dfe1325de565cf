// The central directory of a zip file in memory, read without LibTorch (so it can be fuzzed):
// torch.save writes its checkpoints as zips of uncompressed ("stored") records, with the zip64
// extensions past 4 GiB. Only what a reader of stored records needs: each record's name and where
// its bytes lie. Format: PKWARE's APPNOTE.TXT (sections 4.3.7, 4.3.12, 4.3.14-16, 4.5.3).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dsalign {

struct ZipRecord {
  std::string name;
  uint64_t offset = 0;  // of the record's bytes from the start of the file
  uint64_t size = 0;
  bool stored = true;   // false: compressed (its bytes are not the record's contents)
};

// The records of the `size`-byte zip at `data`, in directory order. Errors name `where`: no end
// of central directory, a directory or record outside the file, a header with a wrong signature,
// a stored record whose sizes disagree, multi-disk archives.
std::vector<ZipRecord> read_zip_directory(const uint8_t* data, size_t size, const std::string& where);

}  // namespace dsalign
