#include "train/tensorboard_writer.h"

#include <unistd.h>

#include <algorithm>
#include <boost/crc.hpp>
#include <chrono>
#include <cstring>

#include "train/metric_tags.h"
#include "train/tensorboard_event.pb.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;
namespace tb = dsalign::tensorboard;

namespace {

constexpr int kDtString = 7;  // TensorFlow's DT_STRING

std::string little_endian(uint64_t value, int bytes) {
  std::string out(static_cast<size_t>(bytes), '\0');
  for (int i = 0; i < bytes; ++i) out[static_cast<size_t>(i)] = static_cast<char>((value >> (8 * i)) & 0xff);
  return out;
}

uint64_t read_little_endian(const std::string& bytes, size_t offset, int count) {
  uint64_t value = 0;
  for (int i = 0; i < count; ++i)
    value |= static_cast<uint64_t>(static_cast<uint8_t>(bytes[offset + static_cast<size_t>(i)])) << (8 * i);
  return value;
}

std::string framed(const std::string& bytes) {
  const std::string length = little_endian(bytes.size(), 8);
  return length + little_endian(masked_crc32c(length.data(), length.size()), 4) + bytes +
         little_endian(masked_crc32c(bytes.data(), bytes.size()), 4);
}

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || !name[0]) return "localhost";
  return name;
}

// write_file_atomic's temporary names ("<file>.tmp-<pid>") are not event files.
bool is_event_file(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.find("tfevents") != std::string::npos && name.find(".tmp-") == std::string::npos;
}

bool has_tag(const tb::Event& event, const std::string& tag) {
  for (const tb::Summary::Value& v : event.summary().value())
    if (v.tag() == tag) return true;
  return false;
}

}  // namespace

uint32_t masked_crc32c(const void* data, size_t size) {
  // CRC-32C: polynomial 0x1EDC6F41, reflected, initial and final XOR 0xFFFFFFFF.
  boost::crc_optimal<32, 0x1EDC6F41, 0xFFFFFFFF, 0xFFFFFFFF, true, true> crc;
  crc.process_bytes(data, size);
  const uint32_t c = crc.checksum();
  return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

std::vector<fs::path> tensorboard_event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    if (it->is_regular_file(ec) && is_event_file(it->path())) files.push_back(it->path());
  std::sort(files.begin(), files.end());
  return files;
}

TensorBoardWriter::TensorBoardWriter(const fs::path& dir, bool append) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) fail(dir.string(), ": cannot create the TensorBoard directory (", ec.message(), ")");
  const std::vector<fs::path> existing = tensorboard_event_files(dir);
  const bool continuing = append && !existing.empty();
  if (continuing) {
    path_ = existing.back();
  } else {
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(
        std::chrono::system_clock::now().time_since_epoch()).count();
    path_ = dir / ("events.out.tfevents." + std::to_string(seconds) + "." + host_name() + "." +
                   std::to_string(::getpid()) + ".dsalign");
  }
  out_.open(path_, std::ios::binary | (continuing ? std::ios::app : std::ios::trunc));
  if (!out_) fail(path_.string(), ": cannot open for writing");
  if (continuing) return;
  tb::Event first;
  first.set_wall_time(std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
  first.set_file_version("brain.Event:2");
  write_record(first.SerializeAsString());
}

void TensorBoardWriter::add_scalars(int64_t step, double wall_time,
                                    const std::vector<std::pair<std::string, double>>& values) {
  if (values.empty()) return;
  tb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  for (const auto& [tag, value] : values) {
    tb::Summary::Value* v = event.mutable_summary()->add_value();
    v->set_tag(tag);
    v->set_simple_value(static_cast<float>(value));
  }
  write_record(event.SerializeAsString());
}

void TensorBoardWriter::add_text(int64_t step, double wall_time, const std::string& tag, const std::string& text) {
  tb::Event event;
  event.set_wall_time(wall_time);
  event.set_step(step);
  tb::Summary::Value* v = event.mutable_summary()->add_value();
  v->set_tag(tag);
  v->mutable_metadata()->mutable_plugin_data()->set_plugin_name("text");
  v->mutable_tensor()->set_dtype(kDtString);
  v->mutable_tensor()->mutable_tensor_shape();  // a scalar: no dimensions
  v->mutable_tensor()->add_string_val(text);
  write_record(event.SerializeAsString());
}

void TensorBoardWriter::write_record(const std::string& bytes) {
  out_ << framed(bytes);
  out_.flush();
  if (!out_) fail(path_.string(), ": write failed (disk full?)");
}

TfRecords read_tfrecords(const fs::path& file) {
  const std::string bytes = read_text_file(file);
  TfRecords out;
  size_t at = 0;
  while (at < bytes.size()) {
    if (bytes.size() - at < 12) break;
    const uint64_t length = read_little_endian(bytes, at, 8);
    if (static_cast<uint32_t>(read_little_endian(bytes, at + 8, 4)) != masked_crc32c(bytes.data() + at, 8)) break;
    if (length > bytes.size() - at - 12 || bytes.size() - at - 12 - length < 4) break;
    const std::string data = bytes.substr(at + 12, length);
    if (static_cast<uint32_t>(read_little_endian(bytes, at + 12 + length, 4)) != masked_crc32c(data.data(), data.size()))
      break;
    out.records.push_back(data);
    at += 16 + length;
  }
  out.clean = at == bytes.size();
  return out;
}

std::vector<TensorBoardScalar> read_tensorboard_scalars(const fs::path& file) {
  std::vector<TensorBoardScalar> out;
  for (const std::string& record : read_tfrecords(file).records) {
    tb::Event event;
    if (!event.ParseFromString(record)) fail(file.string(), ": a record that is not a TensorBoard event");
    for (const tb::Summary::Value& v : event.summary().value())
      if (v.value_case() == tb::Summary::Value::kSimpleValue)
        out.push_back({v.tag(), event.step(), event.wall_time(), v.simple_value()});
  }
  return out;
}

void truncate_tensorboard(const fs::path& dir, int64_t step) {
  for (const fs::path& file : tensorboard_event_files(dir)) {
    TfRecords records = read_tfrecords(file);
    std::string kept;
    bool dropped = !records.clean;
    for (const std::string& record : records.records) {
      tb::Event event;
      if (event.ParseFromString(record) && event.what_case() == tb::Event::kSummary &&
          !kept_on_resume(event.step(), has_tag(event, metric_tag("loss")), step)) {
        dropped = true;
        continue;
      }
      kept += framed(record);
    }
    if (!dropped) continue;
    // Written under a name without "tfevents", which TensorBoard would read as a second log.
    const fs::path partial = dir / (".truncate-" + std::to_string(::getpid()) + ".partial");
    write_file_atomic(partial, kept);
    std::error_code ec;
    fs::rename(partial, file, ec);
    if (ec) fail(file.string(), ": cannot replace it (", ec.message(), ")");
  }
}

}  // namespace dsalign
