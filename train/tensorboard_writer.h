// TensorBoard event files: what `tensorboard --logdir` and its Python reader read. Each record
// is an Event protobuf (train/tensorboard_event.proto, TensorBoard's field numbers) in TFRecord
// framing: length, masked CRC-32C of the length, the bytes, masked CRC-32C of the bytes. Every
// event is flushed as it is written, so a killed run loses at most the record being written,
// and TensorBoard reads a file up to its last complete record.
#pragma once
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace dsalign {

// TensorFlow's masked CRC-32C (Castagnoli), as TFRecord framing stores it.
uint32_t masked_crc32c(const void* data, size_t size);

class TensorBoardWriter {
 public:
  // A new events file in `dir` (created), or with append=true the newest one there, continued.
  TensorBoardWriter(const std::filesystem::path& dir, bool append);
  // One event at `step` holding every (tag, value) as a scalar.
  void add_scalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, double>>& values);
  // Text for TensorBoard's text plugin (rendered as Markdown).
  void add_text(int64_t step, double wall_time, const std::string& tag, const std::string& text);
  const std::filesystem::path& path() const { return path_; }

 private:
  void write_record(const std::string& bytes);

  std::filesystem::path path_;
  std::ofstream out_;
};

// The complete records of a TFRecord file, in order; reading stops at the first short or
// corrupt record (a killed writer's last one), and `clean` says whether the file ended there.
struct TfRecords {
  std::vector<std::string> records;
  bool clean = true;
};
TfRecords read_tfrecords(const std::filesystem::path& file);

// One scalar of an events file, as TensorBoard reads it.
struct TensorBoardScalar {
  std::string tag;
  int64_t step = 0;
  double wall_time = 0;
  float value = 0;
};
std::vector<TensorBoardScalar> read_tensorboard_scalars(const std::filesystem::path& file);

// The events files of `dir`, in TensorBoard's order (by name).
std::vector<std::filesystem::path> tensorboard_event_files(const std::filesystem::path& dir);

// For a run resumed at `step`: drops the events kept_on_resume (train/metric_tags) does not keep,
// and a torn last record, from the event files of `dir`, rewriting a file only when something is
// dropped; so the resumed run appends without repeating steps or going back.
void truncate_tensorboard(const std::filesystem::path& dir, int64_t step);

}  // namespace dsalign
