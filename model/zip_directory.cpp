#include "model/zip_directory.h"

#include <algorithm>

#include "util/error.h"

namespace dsalign {
namespace {

constexpr uint32_t kLocalHeader = 0x04034b50, kCentralHeader = 0x02014b50, kEnd = 0x06054b50;
constexpr uint32_t kZip64End = 0x06064b50, kZip64Locator = 0x07064b50;
constexpr size_t kLocalSize = 30, kCentralSize = 46, kEndSize = 22, kZip64EndSize = 56, kLocatorSize = 20;

// Little-endian reads at offsets already checked against the buffer's size.
uint64_t le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// Fields a central header can move into its zip64 extra field (0xFFFFFFFF in the header).
struct Zip64Fields {
  uint64_t compressed, uncompressed, local_offset;
};

// The zip64 extended-information extra field (id 1) replaces, in this order, each header value
// that is 0xFFFFFFFF.
void read_zip64_extra(const uint8_t* extra, size_t length, Zip64Fields& f, const std::string& where) {
  for (size_t at = 0; at + 4 <= length;) {
    const uint64_t id = le(extra + at, 2), size = le(extra + at + 2, 2);
    if (at + 4 + size > length) fail(where, ": extra field runs past its header");
    if (id == 1) {
      size_t p = at + 4;
      for (uint64_t* field : {&f.uncompressed, &f.compressed, &f.local_offset}) {
        if (*field != 0xFFFFFFFFu) continue;
        if (p + 8 > at + 4 + size) fail(where, ": zip64 extra field is too short");
        *field = le(extra + p, 8);
        p += 8;
      }
      return;
    }
    at += 4 + size;
  }
}

struct Directory {
  uint64_t entries = 0, offset = 0, size = 0;
};

// The end of central directory record (and its zip64 form): where the directory is.
Directory find_directory(const uint8_t* data, size_t size, const std::string& where) {
  if (size < kEndSize) fail(where, ": not a zip file (", size, " bytes)");
  // The record is 22 bytes plus a comment of at most 65,535, at the very end.
  const size_t lowest = size > kEndSize + 0xFFFF ? size - kEndSize - 0xFFFF : 0;
  size_t end = size - kEndSize;
  while (!(le(data + end, 4) == kEnd && end + kEndSize + le(data + end + 20, 2) == size)) {
    if (end == lowest) fail(where, ": no zip end-of-directory record (truncated file?)");
    --end;
  }
  if (le(data + end + 4, 2) != 0 || le(data + end + 6, 2) != 0) fail(where, ": multi-disk zip archives are not supported");
  Directory d{le(data + end + 10, 2), le(data + end + 16, 4), le(data + end + 12, 4)};
  if (end >= kLocatorSize && le(data + end - kLocatorSize, 4) == kZip64Locator) {
    const uint64_t at = le(data + end - kLocatorSize + 8, 8);
    if (at > size || size - at < kZip64EndSize || le(data + at, 4) != kZip64End)
      fail(where, ": zip64 end-of-directory record is missing or outside the file");
    d = Directory{le(data + at + 32, 8), le(data + at + 48, 8), le(data + at + 40, 8)};
  }
  if (d.offset > size || d.size > size - d.offset) fail(where, ": zip central directory lies outside the file (truncated file?)");
  // Each entry takes at least 46 bytes: a count beyond that is a lie, not a reason to allocate.
  if (d.entries > d.size / kCentralSize) fail(where, ": zip directory claims ", d.entries, " records in ", d.size, " bytes");
  return d;
}

}  // namespace

std::vector<ZipRecord> read_zip_directory(const uint8_t* data, size_t size, const std::string& where) {
  const Directory dir = find_directory(data, size, where);
  std::vector<ZipRecord> records;
  records.reserve(dir.entries);
  uint64_t at = dir.offset;
  const uint64_t stop = dir.offset + dir.size;
  for (uint64_t i = 0; i < dir.entries; ++i) {
    if (stop - at < kCentralSize || le(data + at, 4) != kCentralHeader)
      fail(where, ": zip directory entry ", i, " is damaged (truncated file?)");
    const uint8_t* h = data + at;
    const uint64_t name_length = le(h + 28, 2), extra_length = le(h + 30, 2), comment_length = le(h + 32, 2);
    if (stop - at - kCentralSize < name_length + extra_length + comment_length)
      fail(where, ": zip directory entry ", i, " runs past the directory");
    ZipRecord r;
    r.name.assign(reinterpret_cast<const char*>(h + kCentralSize), name_length);
    const std::string record_where = where + ": zip record '" + r.name.substr(0, 200) + "'";
    Zip64Fields f{le(h + 20, 4), le(h + 24, 4), le(h + 42, 4)};
    read_zip64_extra(h + kCentralSize + name_length, extra_length, f, record_where);
    r.stored = le(h + 10, 2) == 0;
    if (r.stored && f.compressed != f.uncompressed)
      fail(record_where, ": stored record with sizes ", f.compressed, " and ", f.uncompressed);
    if (f.local_offset > size || size - f.local_offset < kLocalSize || le(data + f.local_offset, 4) != kLocalHeader)
      fail(record_where, ": local header is missing or outside the file (truncated file?)");
    const uint64_t start = f.local_offset + kLocalSize + le(data + f.local_offset + 26, 2) + le(data + f.local_offset + 28, 2);
    if (start > size || f.compressed > size - start) fail(record_where, ": data runs past the end of the file (truncated file?)");
    r.offset = start;
    r.size = f.compressed;
    records.push_back(std::move(r));
    at += kCentralSize + name_length + extra_length + comment_length;
  }
  return records;
}

}  // namespace dsalign
