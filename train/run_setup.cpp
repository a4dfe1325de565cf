#include "train/run_setup.h"

#include <sstream>

#include "model/checkpoint.h"
#include "model/export.h"
#include "train/checkpoint_reader.h"
#include "train/training_checkpoint.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;

void check_run_directory(const RunSection& run, bool resuming) {
  const fs::path& out = run.output_dir;
  if (fs::exists(out / "config.yaml") && !run.overwrite && !resuming)
    fail(out.string(), ": already holds a run (resume it with --resume, or set run.overwrite=true to replace it)");
}

void prepare_run_directory(const RunSection& run, bool resuming, const std::vector<std::string>& extra) {
  const fs::path& out = run.output_dir;
  check_run_directory(run, resuming);
  if (run.overwrite && !resuming) {
    fs::remove(out / "metrics.jsonl");
    fs::remove_all(out / "final");
    fs::remove_all(out / "checkpoints");
    for (const auto& name : extra) fs::remove_all(out / name);
  }
  fs::create_directories(out);
}

DecoderOptions decoder_options(const ModelSection& m, const fs::path& recipe) {
  DecoderOptions o;
  o.device = torch::Device(m.device);
  if (o.device.is_cuda() && !torch::cuda::is_available())
    fail(recipe.string(), ": model.device: cuda, but no CUDA device is available");
  o.param_dtype = parse_dtype(m.dtype);
  o.compute_dtype = parse_dtype(m.compute_dtype);
  o.activation_checkpointing = m.activation_checkpointing;
  o.backend = m.kernels ? ops::Backend::kernels : ops::Backend::reference;
  return o;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const NamedTensors& named, const TrainConfig& t) {
  std::vector<torch::Tensor> decay, no_decay;
  for (const auto& [name, tensor] : named) {
    bool norm_or_embedding = name.ends_with("norm.weight") || name.find("embed_tokens") != std::string::npos;
    bool exempt = name.ends_with(".bias") || (!t.decay_norms_and_embeddings && norm_or_embedding);
    (exempt ? no_decay : decay).push_back(tensor);
  }
  auto options = [&](double wd) {
    auto o = std::make_unique<torch::optim::AdamWOptions>(t.schedule.lr);
    o->betas({t.beta1, t.beta2}).eps(t.eps).weight_decay(wd);
    return o;
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, options(t.weight_decay));
  groups.emplace_back(no_decay, options(0.0));
  return std::make_unique<torch::optim::AdamW>(groups, torch::optim::AdamWOptions(t.schedule.lr));
}

std::unique_ptr<torch::optim::AdamW> make_optimizer(CausalLM& model, const TrainConfig& t) {
  NamedTensors named;
  for (auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  return make_adamw(named, t);
}

void set_learning_rate(torch::optim::AdamW& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
}

Batch collate(const std::vector<PackedRow>& rows, size_t begin, size_t end, const torch::Device& device, int32_t pad_id) {
  int64_t T = 0;
  for (size_t r = begin; r < end; ++r) T = std::max<int64_t>(T, static_cast<int64_t>(rows[r].ids.size()));
  const int64_t B = static_cast<int64_t>(end - begin);
  auto ids = torch::full({B, T}, pad_id, torch::kInt64), labels = torch::full({B, T}, -100, torch::kInt64);
  auto positions = torch::zeros({B, T}, torch::kInt64), documents = torch::full({B, T}, -1, torch::kInt64);
  Batch batch;
  for (int64_t b = 0; b < B; ++b) {
    const PackedRow& row = rows[begin + static_cast<size_t>(b)];
    const int64_t n = static_cast<int64_t>(row.ids.size());
    std::memcpy(ids[b].data_ptr<int64_t>(), row.ids.data(), static_cast<size_t>(n) * 8);
    std::memcpy(labels[b].data_ptr<int64_t>(), row.labels.data(), static_cast<size_t>(n) * 8);
    std::memcpy(positions[b].data_ptr<int64_t>(), row.positions.data(), static_cast<size_t>(n) * 8);
    std::memcpy(documents[b].data_ptr<int64_t>(), row.document_ids.data(), static_cast<size_t>(n) * 8);
    batch.tokens += row.real_tokens;
  }
  batch.loss_tokens = (labels.narrow(1, 1, T - 1) != -100).sum().item<int64_t>();
  batch.input = {ids.to(device), positions.to(device), documents.to(device)};
  batch.labels = labels.to(device);
  return batch;
}

nlohmann::json TrainingState::to_json(ChatFormat format) const {
  return {{"step", step},
          {"epoch", epoch},
          {"step_in_epoch", step_in_epoch},
          {"tokens_seen", tokens_seen},
          {"skipped_steps", skipped_steps},
          {"chat_format", chat_format_name(format)}};
}

TrainingState TrainingState::from_json(const nlohmann::json& j, const fs::path& file) {
  TrainingState s;
  try {
    s.step = j.at("step");
    s.epoch = j.at("epoch");
    s.step_in_epoch = j.at("step_in_epoch");
    s.tokens_seen = j.at("tokens_seen");
    s.skipped_steps = j.at("skipped_steps");
  } catch (const nlohmann::json::exception& e) {
    fail(file.string(), ": ", first_line(e));
  }
  return s;
}

fs::path checkpoint_to_resume(const fs::path& out, const std::string& resume) {
  if (resume != "latest") return resume;
  fs::path newest = newest_training_checkpoint(out);
  if (newest.empty()) fail(out.string(), ": --resume latest, but there is no complete checkpoint in ", (out / "checkpoints").string());
  return newest;
}

TrainingState resume_training(const fs::path& out, const std::string& resume, CausalLM& model,
                              const RestoreOptimizer& restore_optimizer, bool main, int64_t rank) {
  fs::path checkpoint = checkpoint_to_resume(out, resume);
  CheckpointReader reader(checkpoint);
  TrainingState state = TrainingState::from_json(load_training_checkpoint(reader, model, rank), checkpoint / "state.json");
  restore_optimizer(reader);
  if (main) {
    truncate_metrics(out / "metrics.jsonl", state.step);
    std::fprintf(stderr, "resuming from %s at step %lld\n", checkpoint.c_str(), static_cast<long long>(state.step));
  }
  return state;
}

TrainingState resume_training(const fs::path& out, const std::string& resume, CausalLM& model, torch::optim::AdamW& optimizer,
                              bool main) {
  return resume_training(
      out, resume, model,
      [&](const CheckpointReader& reader) {
        NamedTensors named;
        for (auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
        restore_adamw_state(named, {}, optimizer, whole_adamw_state(reader, named), reader.dir().string());
      },
      main, 0);
}

CheckpointSnapshot training_snapshot(CausalLM& model, const NamedTensors& weights, NamedTensors optimizer_state,
                                     const fs::path& out, const TrainingState& state, ChatFormat format,
                                     const fs::path& tokenizer_dir, int64_t keep_last) {
  CheckpointSnapshot snapshot = snapshot_training_state(model, weights, std::move(optimizer_state));
  snapshot.dir = out / "checkpoints" / ("step_" + std::to_string(state.step));
  snapshot.state = state.to_json(format);
  snapshot.tokenizer_dir = tokenizer_dir;
  snapshot.keep_last = keep_last;
  return snapshot;
}

CheckpointSnapshot training_snapshot(CausalLM& model, torch::optim::AdamW& optimizer, const fs::path& out,
                                     const TrainingState& state, ChatFormat format, const fs::path& tokenizer_dir,
                                     int64_t keep_last) {
  NamedTensors named;
  for (auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  return training_snapshot(model, checkpoint_tensors(model), adamw_state_tensors(named, optimizer), out, state, format,
                           tokenizer_dir, keep_last);
}

fs::path export_final(CausalLM& model, const fs::path& out, const fs::path& tokenizer_dir, ChatFormat format) {
  return export_final(model->config, checkpoint_tensors(model), out, tokenizer_dir, format);
}

fs::path export_final(const ModelConfig& config, const NamedTensors& weights, const fs::path& out,
                      const fs::path& tokenizer_dir, ChatFormat format) {
  ExportOptions options;
  options.overwrite = true;
  export_chat_checkpoint(config, weights, tokenizer_dir, format, out / "final", options);
  return out / "final";
}

void truncate_metrics(const fs::path& path, int64_t step) {
  if (!fs::exists(path)) return;
  std::string kept;
  std::istringstream in(read_text_file(path));
  for (std::string line; std::getline(in, line);) {
    try {
      if (nlohmann::json::parse(line).value("step", int64_t{0}) > step) continue;
    } catch (const nlohmann::json::exception&) {
      continue;  // a half-written last line
    }
    kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

}  // namespace dsalign
