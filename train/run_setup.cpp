#include "train/run_setup.h"

#include <sstream>

#include "data/varlen.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/kernel_choice.h"
#include "train/checkpoint_reader.h"
#include "train/metric_tags.h"
#include "train/tensorboard_writer.h"
#include "train/training_checkpoint.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;

void check_run_directory(const RunSection& run, bool resuming) {
  const fs::path& out = run.output_dir;
  if (path_exists(out / "config.yaml") && !run.overwrite && !resuming)
    fail(out.string(), ": already holds a run (resume it with --resume, or set run.overwrite=true to replace it)");
}

void prepare_run_directory(const RunSection& run, bool resuming, const std::vector<std::string>& extra) {
  const fs::path& out = run.output_dir;
  check_run_directory(run, resuming);
  if (run.overwrite && !resuming) {
    fs::remove(out / "metrics.jsonl");
    fs::remove_all(out / "tensorboard");
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
  o.kernels = choose_kernels(m.kernels, o.device);
  return o;
}

std::unique_ptr<AdamW> make_adamw(const NamedTensors& named, const TrainConfig& t, bool fused) {
  AdamWGroup decay{{}, t.weight_decay}, no_decay{{}, 0.0};
  for (const auto& [name, tensor] : named) {
    bool norm_or_embedding = name.ends_with("norm.weight") || name.find("embed_tokens") != std::string::npos;
    bool exempt = name.ends_with(".bias") || (!t.decay_norms_and_embeddings && norm_or_embedding);
    (exempt ? no_decay : decay).params.push_back(tensor);
  }
  AdamWSettings settings;
  settings.beta1 = t.beta1;
  settings.beta2 = t.beta2;
  settings.eps = t.eps;
  settings.fused = fused;
  return std::make_unique<AdamW>(std::vector<AdamWGroup>{decay, no_decay}, settings);
}

torch::Tensor host_to_device(const torch::Tensor& host, const torch::Device& device) {
  if (!device.is_cuda()) return host.to(device);
  return host.pin_memory().to(device, /*non_blocking=*/true);
}

Batch collate(const std::vector<PackedRow>& rows, size_t begin, size_t end, const torch::Device& device, int32_t pad_id,
              bool varlen) {
  int64_t T = 0;
  for (size_t r = begin; r < end; ++r) T = std::max<int64_t>(T, static_cast<int64_t>(rows[r].ids.size()));
  const int64_t B = static_cast<int64_t>(end - begin);
  auto ids = torch::full({B, T}, pad_id, torch::kInt64), labels = torch::full({B, T}, -100, torch::kInt64);
  auto positions = torch::zeros({B, T}, torch::kInt64), documents = torch::full({B, T}, -1, torch::kInt64);
  std::vector<int64_t> target_rows;
  Batch batch;
  for (int64_t b = 0; b < B; ++b) {
    const PackedRow& row = rows[begin + static_cast<size_t>(b)];
    const int64_t n = static_cast<int64_t>(row.ids.size());
    std::memcpy(ids[b].data_ptr<int64_t>(), row.ids.data(), static_cast<size_t>(n) * 8);
    std::memcpy(labels[b].data_ptr<int64_t>(), row.labels.data(), static_cast<size_t>(n) * 8);
    std::memcpy(positions[b].data_ptr<int64_t>(), row.positions.data(), static_cast<size_t>(n) * 8);
    std::memcpy(documents[b].data_ptr<int64_t>(), row.document_ids.data(), static_cast<size_t>(n) * 8);
    for (int64_t t = 1; t < n; ++t)
      if (row.labels[static_cast<size_t>(t)] != -100) target_rows.push_back(b * (T - 1) + t - 1);
    batch.tokens += row.real_tokens;
  }
  batch.loss_tokens = static_cast<int64_t>(target_rows.size());
  auto to_device = [&](const torch::Tensor& t) { return host_to_device(t, device); };
  batch.input = {to_device(ids), to_device(positions), to_device(documents)};
  batch.labels = to_device(labels);
  batch.target_rows = to_device(torch::tensor(target_rows, torch::kInt64));
  if (varlen) {
    const VarlenLayout layout = varlen_layout(rows, begin, end);
    batch.input.varlen.token_index = to_device(torch::tensor(layout.token_index, torch::kInt64));
    batch.input.varlen.cu_seqlens = to_device(torch::tensor(layout.cu_seqlens, torch::kInt32));
    batch.input.varlen.max_seqlen = layout.max_seqlen;
  }
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
    truncate_tensorboard(out / "tensorboard", state.step);
    std::fprintf(stderr, "resuming from %s at step %lld\n", checkpoint.c_str(), static_cast<long long>(state.step));
  }
  return state;
}

CheckpointSnapshot training_snapshot(CausalLM& model, const NamedTensors& weights, NamedTensors optimizer_state,
                                     const fs::path& out, const TrainingState& state, ChatFormat format,
                                     const fs::path& tokenizer_dir, int64_t keep_last, HostStaging& staging) {
  CheckpointSnapshot snapshot = snapshot_training_state(model, weights, std::move(optimizer_state), staging);
  snapshot.dir = out / "checkpoints" / ("step_" + std::to_string(state.step));
  snapshot.state = state.to_json(format);
  snapshot.tokenizer_dir = tokenizer_dir;
  snapshot.keep_last = keep_last;
  return snapshot;
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
  if (!path_exists(path)) return;
  std::string kept;
  std::istringstream in(read_text_file(path));
  for (std::string line; std::getline(in, line);) {
    try {
      const nlohmann::json record = nlohmann::json::parse(line);
      if (!kept_on_resume(record.value("step", int64_t{0}), record.contains("loss"), step)) continue;
    } catch (const nlohmann::json::exception&) {
      continue;  // a half-written last line
    }
    kept += line + "\n";
  }
  write_file_atomic(path, kept);
}

}  // namespace dsalign
