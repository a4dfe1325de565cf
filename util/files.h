// Files: read-only memory maps, whole-file reads, atomic directory publication, and the
// process's own memory figures (for `inspect --load` and the benchmarks).
#pragma once
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>

namespace dsalign {

namespace fs = std::filesystem;

// A read-only, private memory map of a whole file. Pages are touched lazily; release() drops a
// range from this process's resident set once it has been copied out, so streaming a 10 GB shard
// does not keep 10 GB resident.
class MappedFile {
 public:
  explicit MappedFile(const fs::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const fs::path& path() const { return path_; }
  void release(size_t offset, size_t length) const;

 private:
  fs::path path_;
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

std::string read_text_file(const fs::path& path);

// Writes a directory's contents under a temporary sibling name, then renames it into place, so a
// crash never leaves a directory at `final_dir` that looks complete but is not.
class StagedDirectory {
 public:
  // overwrite=false: an existing non-empty final_dir is an error.
  StagedDirectory(const fs::path& final_dir, bool overwrite);
  ~StagedDirectory();  // removes the staging directory unless commit() ran
  const fs::path& path() const { return staging_; }
  void commit();

 private:
  fs::path final_;
  fs::path staging_;
  bool overwrite_;
  bool committed_ = false;
};

// Write a file through a temporary name and rename.
void write_file_atomic(const fs::path& path, const std::string& contents);

// For an output path: creates its parent directories, or fails with one line naming `path` and
// why (a parent that is a file, no permission, a name too long), never a raw filesystem message.
void create_parent_directories(const fs::path& path);

// For an output the command will write later: fails now, creating nothing, with one line naming
// `what` (an argument or recipe key) and `path`, when it cannot be written: too long, under a
// regular file, in a directory this process may not write, a directory where a file goes (or the
// reverse). Nothing is written until the work is done, so a run cannot fail at its very end.
enum class OutputKind { file, directory };
void check_output_path(const fs::path& path, const std::string& what, OutputKind kind);

// Non-throwing tests of a user's path: false for a path that cannot be examined (too long,
// under a file, no permission).
bool is_existing_directory(const fs::path& path);
bool is_existing_file(const fs::path& path);
bool path_exists(const fs::path& path);

struct HostMemory {
  int64_t resident_bytes = 0;       // VmRSS
  int64_t peak_resident_bytes = 0;  // VmHWM
};
HostMemory host_memory();
// Resets the peak (VmHWM) to the current resident size, where the kernel allows it.
void reset_peak_host_memory();

std::string human_bytes(double bytes);

}  // namespace dsalign
