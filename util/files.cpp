#include "util/files.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <fstream>
#include <sstream>

#include "util/error.h"

namespace dsalign {

MappedFile::MappedFile(const fs::path& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path.string(), ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    fail(path.string(), ": cannot stat: ", std::strerror(err));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    // Private and writable: a tensor left on the mapping (a model that is not trained, loaded
    // without a copy) may be written by accident, which then copies that page and never reaches
    // the file; MAP_NORESERVE: the mapping is file-backed and costs no swap reservation.
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, 0);
    if (p == MAP_FAILED) {
      int err = errno;
      ::close(fd);
      fail(path.string(), ": cannot map: ", std::strerror(err));
    }
    data_ = static_cast<uint8_t*>(p);
  }
  ::close(fd);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(data_, size_);
}

void MappedFile::release(size_t offset, size_t length) const {
  if (!data_ || length == 0) return;
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  size_t begin = (offset + page - 1) / page * page;  // only whole pages inside the range
  size_t end = (offset + length) / page * page;
  if (end > begin) ::madvise(data_ + begin, end - begin, MADV_DONTNEED);
}

std::string read_text_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path.string(), ": cannot open for reading (", std::strerror(errno), ")");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

bool path_exists(const fs::path& path) {
  std::error_code ec;
  return fs::exists(path, ec) && !ec;
}

bool is_existing_directory(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && !ec;
}

bool is_existing_file(const fs::path& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec) && !ec;
}

namespace {

// At most 200 characters of a path, for messages.
std::string shown(const fs::path& path) {
  const std::string s = path.string();
  return s.size() > 200 ? s.substr(0, 200) + "..." : s;
}

// A path the kernel would refuse as too long: checked first, so that nothing is created on the
// way to it (create_directories would make every shorter prefix before failing).
void check_length(const fs::path& path, const std::string& what) {
  std::error_code ec;
  const fs::path absolute = path.is_absolute() ? path : fs::current_path(ec) / path;
  if (absolute.string().size() >= PATH_MAX)
    fail(what, shown(path), ": path too long (", absolute.string().size(), " characters; the limit is ", PATH_MAX - 1, ")");
  for (const fs::path& part : path)
    if (part.string().size() > NAME_MAX)
      fail(what, shown(path), ": a name in the path is too long (", part.string().size(), " characters; the limit is ", NAME_MAX, ")");
}

// The nearest of `dir` and its ancestors that is there (or cannot be examined: `ec` says why),
// where an output's missing directories would be made; empty when none is.
fs::path nearest_existing(const fs::path& dir, std::error_code& ec) {
  for (fs::path p = dir; !p.empty(); p = p.parent_path()) {
    const fs::file_status status = fs::status(p, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) return p;
    ec.clear();
    if (fs::exists(status) || p == p.parent_path()) return p;
  }
  return {};
}

// Whether this process may create files in the directory `dir`: tried, not inferred from modes.
std::string write_probe(const fs::path& dir) {
  const fs::path probe = dir / (".dsalign-write-test-" + std::to_string(::getpid()));
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return std::strerror(errno);
  ::close(fd);
  ::unlink(probe.c_str());
  return "";
}

}  // namespace

void check_output_path(const fs::path& path, const std::string& what, OutputKind kind) {
  const std::string where = what.empty() ? "" : what + ": ";
  if (path.empty()) fail(what, ": an empty path");
  check_length(path, where);
  std::error_code ec;
  const fs::file_status status = fs::status(path, ec);
  if (fs::exists(status)) {
    if (kind == OutputKind::file && fs::is_directory(status))
      fail(where, shown(path), ": is a directory (expected the name of a file to write)");
    if (kind == OutputKind::directory) {
      if (!fs::is_directory(status)) fail(where, shown(path), ": is a file, not a directory");
      const std::string denied = write_probe(path);
      if (!denied.empty()) fail(where, shown(path), ": cannot write in it (", denied, ")");
      return;
    }
  }
  // The nearest ancestor that exists must be a directory this process can write in.
  const fs::path p = nearest_existing(fs::absolute(path, ec).lexically_normal().parent_path(), ec);
  if (ec) fail(where, shown(path), ": cannot be created (", shown(p), ": ", ec.message(), ")");
  if (!is_existing_directory(p)) fail(where, shown(path), ": cannot be created: ", shown(p), " is a file, not a directory");
  const std::string denied = write_probe(p);
  if (!denied.empty()) fail(where, shown(path), ": cannot be created in ", shown(p), " (", denied, ")");
}

void create_parent_directories(const fs::path& path) {
  const fs::path parent = fs::path(path).lexically_normal().parent_path();
  if (parent.empty()) return;
  check_length(path, "");
  // The nearest ancestor that exists must be a directory.
  std::error_code ec;
  const fs::path p = nearest_existing(parent, ec);
  if (ec) fail(path.string(), ": cannot be created (", p.string(), ": ", ec.message(), ")");
  if (!p.empty() && path_exists(p) && !is_existing_directory(p))
    fail(path.string(), ": cannot be created: ", p.string(), " is a file, not a directory");
  fs::create_directories(parent, ec);
  if (ec) fail(path.string(), ": cannot create the directory ", parent.string(), " (", ec.message(), ")");
}

StagedDirectory::StagedDirectory(const fs::path& final_dir, bool overwrite) : overwrite_(overwrite) {
  std::error_code ec;
  final_ = fs::absolute(final_dir, ec).lexically_normal();
  if (ec) fail(final_dir.string(), ": not a usable path (", ec.message(), ")");
  if (final_.filename().empty()) final_ = final_.parent_path();
  staging_ = final_.parent_path() / ("." + final_.filename().string() + ".tmp-" + std::to_string(::getpid()));
  // The temporary sibling is the longest name written: checked (with final_, by
  // create_parent_directories) before anything is created.
  check_length(staging_, shown(final_) + ": its temporary directory ");
  create_parent_directories(final_);
  const fs::file_status status = fs::status(final_, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) fail(final_.string(), ": cannot be used (", ec.message(), ")");
  if (fs::exists(status)) {
    if (!fs::is_directory(status)) fail(final_.string(), ": exists and is not a directory");
    if (!overwrite_ && !fs::is_empty(final_, ec))
      fail(final_.string(), ": directory exists and is not empty (choose another output directory)");
  }
  fs::remove_all(staging_, ec);
  fs::create_directories(staging_, ec);
  if (ec) fail(final_.string(), ": cannot write in ", final_.parent_path().string(), " (", ec.message(), ")");
}

StagedDirectory::~StagedDirectory() {
  if (!committed_) {
    std::error_code ignored;
    fs::remove_all(staging_, ignored);
  }
}

void StagedDirectory::commit() {
  // fsync every file so the rename publishes data that is really on disk.
  for (const auto& entry : fs::directory_iterator(staging_)) {
    int fd = ::open(entry.path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      ::fsync(fd);
      ::close(fd);
    }
  }
  std::error_code ec;
  if (path_exists(final_)) {
    fs::path old = final_.parent_path() / ("." + final_.filename().string() + ".old-" + std::to_string(::getpid()));
    fs::rename(final_, old, ec);
    if (!ec) fs::rename(staging_, final_, ec);
    if (!ec) fs::remove_all(old, ec);
  } else {
    fs::rename(staging_, final_, ec);
  }
  if (ec) fail(final_.string(), ": cannot publish the finished directory (", ec.message(), ")");
  committed_ = true;
}

void write_file_atomic(const fs::path& path, const std::string& contents) {
  create_parent_directories(path);
  fs::path tmp = path;
  tmp += ".tmp-" + std::to_string(::getpid());
  std::error_code ec;
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) fail(path.string(), ": cannot open for writing (", std::strerror(errno), ")");
    out.write(contents.data(), static_cast<std::streamsize>(contents.size()));
    out.flush();
    if (!out) {
      out.close();
      fs::remove(tmp, ec);
      fail(path.string(), ": write failed (disk full?)");
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    fail(path.string(), ": cannot be written (", ec.message(), ")");
  }
}

static int64_t status_kib(const std::string& key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::istringstream fields(line.substr(key.size() + 1));
      int64_t kib = 0;
      fields >> kib;
      return kib;
    }
  }
  return 0;
}

HostMemory host_memory() {
  return {status_kib("VmRSS") * 1024, status_kib("VmHWM") * 1024};
}

void reset_peak_host_memory() {
  std::ofstream clear("/proc/self/clear_refs");
  if (clear) clear << "5";
}

std::string human_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  while (bytes >= 1024.0 && unit < 4) {
    bytes /= 1024.0;
    ++unit;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, unit == 0 ? "%.0f %s" : "%.2f %s", bytes, units[unit]);
  return buf;
}

}  // namespace dsalign
