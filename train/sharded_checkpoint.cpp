#include "train/sharded_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <thread>

#include "model/checkpoint.h"
#include "model/config.h"
#include "model/weight_file.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;

namespace {

void fsync_file(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Rank 0, once its own file is written: the rest of the directory, then every rank's file, then
// state.json, then the rename that publishes it.
void publish(const CheckpointSnapshot& s, const fs::path& staging) {
  const ShardPart& part = *s.shard;
  write_file_atomic(staging / "config.json", to_hf_config_json(s.config, dtype_name(s.weight_dtype)).dump(2) + "\n");
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    if (path_exists(s.tokenizer_dir / name)) fs::copy_file(s.tokenizer_dir / name, staging / name, fs::copy_options::overwrite_existing);
  nlohmann::json files = nlohmann::json::array();
  for (int64_t r = 0; r < part.world; ++r) files.push_back(shard_file_name(r, part.world));
  nlohmann::json layout = {{"format", "dsalign sharded checkpoint v1"},
                           {"world_size", part.world},
                           {"strategy", part.strategy},
                           {"rows", "dim 0 in rank order, ceil(rows / world_size) rows per rank"},
                           {"files", files},
                           {"tensors", part.tensors}};
  write_file_atomic(staging / "shard_layout.json", layout.dump() + "\n");
  const auto deadline = std::chrono::steady_clock::now() + part.wait;
  for (int64_t r = 0; r < part.world; ++r) {
    const fs::path file = staging / shard_file_name(r, part.world);
    while (!path_exists(file)) {
      if (std::chrono::steady_clock::now() > deadline)
        fail("rank ", r, "'s ", file.filename().string(), " did not appear within ", part.wait.count() / 60000.0,
             " minutes (the checkpoint is left unpublished)");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  for (const auto& entry : fs::directory_iterator(staging)) fsync_file(entry.path());
  write_file_atomic(staging / "state.json", s.state.dump(2) + "\n");  // last: marks it complete
  fsync_file(staging / "state.json");
  if (path_exists(s.dir)) fs::remove_all(s.dir);  // a step_N an earlier attempt left
  fs::rename(staging, s.dir);
}

}  // namespace

std::string shard_file_name(int64_t rank, int64_t world) {
  char name[64];
  std::snprintf(name, sizeof name, "rank_%05lld-of-%05lld.safetensors", static_cast<long long>(rank),
                static_cast<long long>(world));
  return name;
}

void write_sharded_checkpoint(const CheckpointSnapshot& s) {
  const ShardPart& part = *s.shard;
  const fs::path root = s.dir.parent_path();
  const fs::path staging = root / ("." + s.dir.filename().string() + "." + part.token + ".partial");
  try {
    fs::create_directories(staging);
    NamedTensors mine = s.weights;
    mine.insert(mine.end(), s.trainer_state.begin(), s.trainer_state.end());
    write_safetensors(staging / shard_file_name(part.rank, part.world), mine);  // a temporary name, renamed
    if (part.rank != 0) return;
    publish(s, staging);
  } catch (const Error& e) {
    fail("checkpoint ", s.dir.string(), ": ", e.what());
  } catch (const std::exception& e) {
    fail("checkpoint ", s.dir.string(), ": ", first_line(e));
  }
  prune_checkpoints(root, s.keep_last);
  // Staging directories of earlier steps (killed attempts): never to be complete. One of this
  // step or a later one may be in the making by ranks that are ahead.
  const int64_t step = s.state.value("step", int64_t{0});
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(".step_") || !name.ends_with(".partial")) continue;
    try {
      if (std::stoll(name.substr(6)) >= step) continue;
    } catch (const std::exception&) {
      continue;
    }
    std::error_code ignored;
    fs::remove_all(entry.path(), ignored);
  }
}

}  // namespace dsalign
