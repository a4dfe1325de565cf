#include "train/training_checkpoint.h"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>

#include "model/checkpoint.h"
#include "model/weight_file.h"
#include "train/checkpoint_reader.h"
#include "train/sharded_checkpoint.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {

namespace {

// A sharded checkpoint is complete only with every rank's file its layout lists.
bool shard_files_present(const fs::path& dir) {
  if (!path_exists(dir / "shard_layout.json")) return true;
  try {
    auto layout = nlohmann::json::parse(read_text_file(dir / "shard_layout.json"));
    for (const auto& f : layout.at("files"))
      if (!path_exists(dir / f.get<std::string>())) return false;
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

// checkpoints/step_<N> directories that are complete (state.json present), oldest first.
std::vector<fs::path> complete_checkpoints(const fs::path& root) {
  std::vector<std::pair<int64_t, fs::path>> found;
  if (!is_existing_directory(root)) return {};
  for (const auto& entry : fs::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_directory() || name.rfind("step_", 0) != 0 || !path_exists(entry.path() / "state.json")) continue;
    if (!shard_files_present(entry.path())) continue;
    try {
      found.emplace_back(std::stoll(name.substr(5)), entry.path());
    } catch (const std::exception&) {
    }
  }
  std::sort(found.begin(), found.end());
  std::vector<fs::path> out;
  for (auto& [step, path] : found) out.push_back(std::move(path));
  return out;
}

}  // namespace

NamedTensors adamw_state_tensors(const NamedTensors& named, const AdamW& optimizer, HostStaging& staging) {
  torch::NoGradGuard no_grad;
  NamedTensors out;
  for (const auto& [name, t] : named) {
    const AdamW::ParamState* st = optimizer.state(t);
    if (!st) continue;  // no step taken yet
    const std::string prefix = "optimizer." + name;
    out.emplace_back(prefix + ".exp_avg", staging.copy(prefix + ".exp_avg", st->exp_avg));
    out.emplace_back(prefix + ".exp_avg_sq", staging.copy(prefix + ".exp_avg_sq", st->exp_avg_sq));
    out.emplace_back(prefix + ".step", torch::tensor({st->step}, torch::kInt64));
  }
  return out;
}

CheckpointSnapshot snapshot_training_state(CausalLM& model, const NamedTensors& weights, NamedTensors optimizer_state,
                                           HostStaging& staging) {
  torch::NoGradGuard no_grad;
  CheckpointSnapshot s;
  s.config = model->config;
  s.weight_dtype = model->options.param_dtype;
  for (auto& [name, t] : weights) s.weights.emplace_back(name, staging.copy(name, t));
  s.trainer_state = std::move(optimizer_state);
  s.trainer_state.emplace_back("rng.cpu", cpu_rng_state());
  staging.finish();
  return s;
}

torch::Tensor cpu_rng_state() {
  at::Generator generator = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(generator.mutex());
  return generator.get_state();
}

void write_training_checkpoint(const CheckpointSnapshot& s) {
  if (s.shard) {
    write_sharded_checkpoint(s);
    return;
  }
  const std::string where = s.dir.string();
  try {
    fs::create_directories(s.dir.parent_path());
    StagedDirectory staged(s.dir, true);
    SaveOptions save;
    save.dtype = s.weight_dtype;
    save.overwrite = true;
    save_checkpoint(s.config, s.weights, staged.path(), save);
    for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
      if (path_exists(s.tokenizer_dir / name)) fs::copy_file(s.tokenizer_dir / name, staged.path() / name);
    write_safetensors(staged.path() / "trainer_state.safetensors", s.trainer_state);
    write_file_atomic(staged.path() / "state.json", s.state.dump(2) + "\n");  // last: marks it complete
    staged.commit();
  } catch (const Error& e) {
    fail("checkpoint ", where, ": ", e.what());
  } catch (const std::exception& e) {
    fail("checkpoint ", where, ": ", first_line(e));
  }
  prune_checkpoints(s.dir.parent_path(), s.keep_last);
}

void prune_checkpoints(const fs::path& root, int64_t keep_last) {
  std::vector<fs::path> complete = complete_checkpoints(root);
  for (size_t i = 0; i + static_cast<size_t>(keep_last) < complete.size(); ++i) fs::remove_all(complete[i]);
}

nlohmann::json load_training_checkpoint(const CheckpointReader& reader, CausalLM& model, int64_t rank) {
  const fs::path& dir = reader.dir();
  if (!path_exists(dir / "state.json")) fail(dir.string(), ": not a complete dsalign training checkpoint (no state.json)");
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(read_text_file(dir / "state.json"));
  } catch (const nlohmann::json::exception& e) {
    fail((dir / "state.json").string(), ": ", first_line(e));
  }
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& param = item.value();
    if (!reader.has(name)) fail(dir.string(), ": the checkpoint has no tensor '", name, "'");
    if (reader.shape(name) != param.sizes().vec())
      fail(dir.string(), ": tensor '", name, "' has shape ", shape_string(reader.shape(name)), ", the model's is ",
           shape_string(param.sizes().vec()));
    if (model->unit_runner) {  // sharded parameters: this rank's rows only
      UnitRunner::LoadTarget target = model->unit_runner->load_target(name);
      if (target.into.numel() > 0) target.into.copy_(reader.rows(name, target.begin, target.begin + target.into.size(0)));
    } else {
      param.copy_(reader.whole(name));
    }
  }
  at::Generator generator = at::detail::getDefaultCPUGenerator();  // shares the default's state
  std::lock_guard<std::mutex> lock(generator.mutex());
  generator.set_state(reader.rng_state(rank));
  return state;
}

void restore_adamw_state(const NamedTensors& named, AdamW& optimizer, const std::map<std::string, torch::Tensor>& saved,
                         const std::string& file) {
  auto take = [&](const std::string& name) {
    auto it = saved.find(name);
    if (it == saved.end()) fail(file, ": no tensor '", name, "'");
    return it->second;
  };
  for (const auto& [name, p] : named) {
    const std::string prefix = "optimizer." + name;
    if (!saved.count(prefix + ".step")) continue;
    torch::Tensor moments[2];
    for (int k = 0; k < 2; ++k) {
      const std::string key = prefix + (k == 0 ? ".exp_avg" : ".exp_avg_sq");
      moments[k] = take(key);
      if (moments[k].sizes() != p.sizes())
        fail(file, ": '", key, "' has shape ", moments[k].sizes(), ", the parameter (or this rank's rows of it) has ",
             p.sizes());
    }
    optimizer.set_state(p, moments[0], moments[1], take(prefix + ".step").item<int64_t>());
  }
}

fs::path newest_training_checkpoint(const fs::path& run_dir) {
  std::vector<fs::path> complete = complete_checkpoints(run_dir / "checkpoints");
  return complete.empty() ? fs::path() : complete.back();
}

CheckpointWriter::~CheckpointWriter() {
  if (thread_.joinable()) thread_.join();
}

void CheckpointWriter::wait() {
  if (thread_.joinable()) thread_.join();
  if (error_) {
    std::exception_ptr e = error_;
    error_ = nullptr;
    std::rethrow_exception(e);
  }
}

HostStaging& CheckpointWriter::staging() {
  wait();
  return staging_;
}

void CheckpointWriter::submit(CheckpointSnapshot snapshot) {
  wait();
  if (!background_) {
    staging_.release();  // the snapshot holds its buffers until written, then none are kept
    write_training_checkpoint(snapshot);
    return;
  }
  thread_ = std::thread([this, s = std::move(snapshot)] {
    try {
      write_training_checkpoint(s);
    } catch (...) {
      error_ = std::current_exception();
    }
  });
}

}  // namespace dsalign
