#include "train/checkpoint_reader.h"

#include <nlohmann/json.hpp>

#include "model/checkpoint.h"
#include "model/weight_reader.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;

namespace {

int64_t first_dim(const std::vector<int64_t>& shape) { return shape.empty() ? 1 : shape[0]; }

}  // namespace

void CheckpointReader::add_file(const fs::path& path) {
  if (!path_exists(path)) fail(dir_.string(), ": not a complete training checkpoint (", path.filename().string(), " is missing)");
  files_.push_back(path.extension() == ".bin" ? open_torch_bin(path) : open_safetensors(path));
}

CheckpointReader::CheckpointReader(const fs::path& dir) : dir_(dir) {
  if (!is_existing_directory(dir)) fail(dir.string(), ": no such checkpoint directory");
  if (!path_exists(dir / "state.json")) fail(dir.string(), ": not a complete dsalign training checkpoint (no state.json)");
  const fs::path layout_file = dir / "shard_layout.json";
  if (!path_exists(layout_file)) {
    // One process: the Hugging Face weights and trainer_state.safetensors, each tensor whole.
    if (!path_exists(dir / "trainer_state.safetensors"))
      fail(dir.string(), ": not a complete dsalign training checkpoint (no trainer_state.safetensors or shard_layout.json)");
    std::vector<fs::path> paths = find_checkpoint_files(dir).files;
    paths.push_back(dir / "trainer_state.safetensors");
    for (const fs::path& p : paths) {
      add_file(p);
      for (const TensorEntry& e : files_.back()->entries()) {
        Piece piece{files_.size() - 1, e, 0, first_dim(e.shape)};
        if (e.name == "rng.cpu") {
          rng_.push_back(piece);
          continue;
        }
        if (shapes_.count(e.name)) fail(p.string(), ": tensor '", e.name, "' appears twice in the checkpoint");
        shapes_[e.name] = e.shape;
        pieces_[e.name].push_back(piece);
      }
    }
    return;
  }
  sharded_ = true;
  nlohmann::json layout;
  try {
    layout = nlohmann::json::parse(read_text_file(layout_file));
    world_ = layout.at("world_size").get<int64_t>();
    const auto files = layout.at("files").get<std::vector<std::string>>();
    if (world_ < 1 || static_cast<int64_t>(files.size()) != world_)
      fail(layout_file.string(), ": ", files.size(), " files for world_size ", world_);
    for (const std::string& f : files) {
      if (f.find("..") != std::string::npos || f.empty() || f[0] == '/') fail(layout_file.string(), ": file '", f, "' is not inside the checkpoint");
      add_file(dir / f);
    }
    // Each file's tensors by name, to find the pieces the layout lists.
    std::vector<std::map<std::string, const TensorEntry*>> by_name(files_.size());
    for (size_t r = 0; r < files_.size(); ++r)
      for (const TensorEntry& e : files_[r]->entries()) by_name[r][e.name] = &e;
    auto entry = [&](size_t r, const std::string& name) -> const TensorEntry& {
      auto it = by_name[r].find(name);
      if (it == by_name[r].end()) fail((dir_ / files[r]).string(), ": no tensor '", name, "' (shard_layout.json lists it)");
      return *it->second;
    };
    for (auto it = layout.at("tensors").begin(); it != layout.at("tensors").end(); ++it) {
      const std::string& name = it.key();
      std::vector<int64_t> shape = it.value().at("shape").get<std::vector<int64_t>>();
      shapes_[name] = shape;
      if (it.value().value("whole", false)) {  // the same in every file (an AdamW step): rank 0's
        pieces_[name].push_back({0, entry(0, name), 0, first_dim(shape)});
        continue;
      }
      const auto rows = it.value().at("rows").get<std::vector<std::pair<int64_t, int64_t>>>();
      if (static_cast<int64_t>(rows.size()) != world_) fail(layout_file.string(), ": '", name, "' has ", rows.size(), " row ranges for ", world_, " ranks");
      for (size_t r = 0; r < rows.size(); ++r) {
        auto [begin, end] = rows[r];
        if (end <= begin) continue;
        const TensorEntry& e = entry(r, name);
        std::vector<int64_t> want = shape;
        want[0] = end - begin;
        if (e.shape != want)
          fail((dir_ / files[r]).string(), ": tensor '", name, "' has shape ", shape_string(e.shape), ", the layout says ", shape_string(want));
        pieces_[name].push_back({r, e, begin, end});
      }
    }
    for (size_t r = 0; r < files_.size(); ++r)
      if (by_name[r].count("rng.cpu")) rng_.push_back({r, *by_name[r]["rng.cpu"], 0, 0});
  } catch (const nlohmann::json::exception& e) {
    fail(layout_file.string(), ": ", first_line(e));
  }
}

const std::vector<int64_t>& CheckpointReader::shape(const std::string& name) const {
  auto it = shapes_.find(name);
  if (it == shapes_.end()) fail(dir_.string(), ": the checkpoint has no tensor '", name, "'");
  return it->second;
}

torch::Tensor CheckpointReader::rows(const std::string& name, int64_t begin, int64_t end) const {
  const std::vector<int64_t>& full = shape(name);
  if (full.empty()) return files_[pieces_.at(name).front().file]->view(pieces_.at(name).front().entry).clone();
  if (begin < 0 || end > full[0] || begin > end)
    fail(dir_.string(), ": rows [", begin, ", ", end, ") of '", name, "' ", shape_string(full), " requested");
  std::vector<int64_t> out_shape = full;
  out_shape[0] = end - begin;
  const std::vector<Piece>& pieces = pieces_.at(name);
  torch::Tensor out = torch::empty(out_shape, torch::TensorOptions().dtype(pieces.front().entry.dtype));
  int64_t covered = 0;
  for (const Piece& p : pieces) {
    const int64_t from = std::max(begin, p.begin), to = std::min(end, p.end);
    if (from >= to) continue;
    const TensorRead read{&p.entry, out.narrow(0, from - begin, to - from), from - p.begin};
    if (readable_by_pread(p.entry, read.into)) read_tensors(files_[p.file]->path(), {read}, WeightReadOptions{});
    else copy_from_mapping(*files_[p.file], read);
    covered += to - from;
  }
  if (covered != end - begin) fail(dir_.string(), ": rows [", begin, ", ", end, ") of '", name, "' are not all in its files");
  return out;
}

torch::Tensor CheckpointReader::whole(const std::string& name) const {
  const std::vector<int64_t>& s = shape(name);
  return rows(name, 0, s.empty() ? 1 : s[0]);
}

torch::Tensor CheckpointReader::rng_state(int64_t rank) const {
  if (rng_.empty()) fail(dir_.string(), ": the checkpoint has no 'rng.cpu'");
  const Piece& p = rank >= 0 && rank < static_cast<int64_t>(rng_.size()) ? rng_[static_cast<size_t>(rank)] : rng_.front();
  return files_[p.file]->view(p.entry).clone();
}

}  // namespace dsalign
