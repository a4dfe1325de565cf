#include "sft/sft_trainer.h"

#include <chrono>
#include <cmath>
#include <iostream>
#include <sstream>

#include "data/sft_data.h"
#include "eval/repetition_eval.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/inspect.h"
#include "train/device_memory.h"
#include "train/training_checkpoint.h"
#include "train/metrics.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;

namespace {

// Rows -> decoder input and labels; rows of unequal length (padding-free) are padded to the
// longest with document -1 and label -100.
struct Batch {
  DecoderInput input;
  torch::Tensor labels;
  int64_t tokens = 0;       // real tokens
  int64_t loss_tokens = 0;  // labels that carry loss (after the shift)
};

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

// The rows of each optimizer step: consecutive micro-batches until the global batch is full.
std::vector<std::pair<size_t, size_t>> plan_steps(const std::vector<PackedRow>& rows, const TrainConfig& t) {
  std::vector<std::pair<size_t, size_t>> steps;  // [begin, end) rows
  size_t begin = 0;
  while (begin < rows.size()) {
    size_t end = begin;
    int64_t tokens = 0;
    if (t.batch_unit == TrainConfig::BatchUnit::sequences) {
      end = std::min(rows.size(), begin + static_cast<size_t>(t.global_batch_size));
    } else {
      while (end < rows.size() && tokens < t.global_batch_size) tokens += rows[end++].real_tokens;
    }
    steps.emplace_back(begin, end);
    begin = end;
  }
  return steps;
}

std::vector<PackedRow> epoch_rows(const SftData& data, const DataConfig& config, int64_t epoch, int32_t pad_id) {
  std::vector<const TokenizedExample*> order;
  for (size_t i : epoch_order(data, config, epoch)) order.push_back(&data.train[i]);
  return pack_examples(order, config.max_seq_len, config.packing, pad_id);
}

// AdamW with two groups: weight decay on matrices; none on norms, biases and (unless asked) the
// embeddings.
std::unique_ptr<torch::optim::AdamW> make_optimizer(CausalLM& model, const TrainConfig& t) {
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    bool norm_or_embedding = name.ends_with("norm.weight") || name.find("embed_tokens") != std::string::npos;
    bool exempt = name.ends_with(".bias") || (!t.decay_norms_and_embeddings && norm_or_embedding);
    (exempt ? no_decay : decay).push_back(item.value());
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

double validation_loss(CausalLM& model, const SftData& data, const SftRecipe& r, int32_t pad_id) {
  if (data.validation.empty()) return -1;
  std::vector<const TokenizedExample*> all;
  for (const auto& e : data.validation) all.push_back(&e);
  auto rows = pack_examples(all, r.data.max_seq_len, r.data.packing, pad_id);
  torch::NoGradGuard no_grad;
  double sum = 0;
  int64_t count = 0;
  for (size_t b = 0; b < rows.size(); b += static_cast<size_t>(r.train.micro_batch_size)) {
    Batch batch = collate(rows, b, std::min(rows.size(), b + static_cast<size_t>(r.train.micro_batch_size)),
                          model->options.device, pad_id);
    auto [s, n] = model->loss_sum(batch.input, batch.labels);
    sum += s.item<double>();
    count += n.item<int64_t>();
  }
  return count ? sum / static_cast<double>(count) : -1;
}

// Where training stands: what a checkpoint must restore besides weights and optimizer state.
// The data order is a pure function of (seed, epoch), so (epoch, step_in_epoch) is the data position.
struct TrainingState {
  int64_t step = 0, epoch = 0, step_in_epoch = 0, tokens_seen = 0, skipped_steps = 0;
  nlohmann::json to_json(ChatFormat format) const {
    return {{"step", step},         {"epoch", epoch},
            {"step_in_epoch", step_in_epoch}, {"tokens_seen", tokens_seen},
            {"skipped_steps", skipped_steps}, {"chat_format", chat_format_name(format)}};
  }
  static TrainingState from_json(const nlohmann::json& j, const fs::path& file) {
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
};

fs::path checkpoint_to_resume(const fs::path& out, const std::string& resume) {
  if (resume != "latest") return resume;
  fs::path newest = newest_training_checkpoint(out);
  if (newest.empty()) fail(out.string(), ": --resume latest, but there is no complete checkpoint in ", (out / "checkpoints").string());
  return newest;
}

// Keeps the metrics lines up to `step` (a killed run may have logged past its last checkpoint).
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

}  // namespace

SftOutcome run_sft(const SftRecipe& r, const RecipeFile& file, const std::string& resume) {
  // --- setup ---
  const fs::path out = r.run.output_dir;
  if (fs::exists(out / "config.yaml") && !r.run.overwrite && resume.empty())
    fail(out.string(), ": already holds a run (resume it with --resume, or set run.overwrite=true to replace it)");
  if (r.run.overwrite && resume.empty()) {
    fs::remove(out / "metrics.jsonl");
    fs::remove_all(out / "final");
    fs::remove_all(out / "checkpoints");
    fs::remove_all(out / "repetition");
  }
  fs::create_directories(out);
  write_file_atomic(out / "config.yaml", resolved_recipe_yaml(r, file));

  Tokenizer tokenizer = Tokenizer::load(r.model.path);
  ChatFormat format = resolve_chat_format(r.data.chat_template, tokenizer);
  SftData data = prepare_sft_data(r.data, tokenizer, format, file.path.parent_path());
  std::cerr << "data: " << data.summary() << "\n";
  const int32_t pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));

  DecoderOptions o;
  o.device = torch::Device(r.model.device);
  if (o.device.is_cuda() && !torch::cuda::is_available()) fail(file.path.string(), ": model.device: cuda, but no CUDA device is available");
  o.param_dtype = parse_dtype(r.model.dtype);
  o.compute_dtype = parse_dtype(r.model.compute_dtype);
  o.activation_checkpointing = r.model.activation_checkpointing;
  o.backend = r.model.kernels ? ops::Backend::kernels : ops::Backend::reference;
  torch::manual_seed(static_cast<uint64_t>(r.run.seed));
  CausalLM model = load_model(r.model.path, o);
  if (tokenizer.vocab_size() > model->config.vocab_size)
    fail(r.model.path.string(), ": the tokenizer has ", tokenizer.vocab_size(), " tokens but the model's vocab_size is ",
         model->config.vocab_size);
  auto optimizer = make_optimizer(model, r.train);

  // The whole run's step count, for the schedule and the ETA.
  int64_t total_steps = 0;
  for (int64_t e = 0; e < r.data.epochs; ++e)
    total_steps += static_cast<int64_t>(plan_steps(epoch_rows(data, r.data, e, pad_id), r.train).size());
  if (r.train.max_steps > 0) total_steps = std::min(total_steps, r.train.max_steps);
  const double flops_per_token = training_flops_per_token(model->config, r.data.max_seq_len);
  const bool tty = ::isatty(STDERR_FILENO);

  std::vector<EvalPrompt> repetition_prompts;
  if (r.repetition) repetition_prompts = read_eval_prompts(r.repetition->prompts, r.repetition->max_prompts);

  TrainingState state;
  if (!resume.empty()) {
    fs::path checkpoint = checkpoint_to_resume(out, resume);
    state = TrainingState::from_json(load_training_checkpoint(checkpoint, model, *optimizer), checkpoint / "state.json");
    truncate_metrics(out / "metrics.jsonl", state.step);
    std::cerr << "resuming from " << checkpoint.string() << " at step " << state.step << "\n";
  }
  MetricsLog metrics(out / "metrics.jsonl", !resume.empty());
  SftOutcome outcome;
  int64_t& step = state.step;
  int64_t& tokens_seen = state.tokens_seen;
  int64_t& skipped_steps = state.skipped_steps;
  auto run_start = std::chrono::steady_clock::now();
  auto last_checkpoint = run_start;
  const int64_t first_step = step;
  auto params = model->parameters();
  CheckpointWriter writer(r.train.async_checkpoint);
  int64_t last_checkpoint_step = state.step;
  auto checkpoint = [&] {
    CheckpointSnapshot snapshot = snapshot_training_state(model, *optimizer);
    snapshot.dir = out / "checkpoints" / ("step_" + std::to_string(step));
    snapshot.state = state.to_json(format);
    snapshot.tokenizer_dir = r.model.path;
    snapshot.keep_last = r.train.keep_last;
    writer.submit(std::move(snapshot));
    last_checkpoint = std::chrono::steady_clock::now();
    last_checkpoint_step = step;
  };
  // The repetition ratio of the model as it stands, into metrics.jsonl and repetition/step_<N>.jsonl.
  int64_t last_repetition_step = -1;
  auto measure = [&] {
    fs::path report = out / "repetition" / ("step_" + std::to_string(step) + ".jsonl");
    RepetitionResult result = measure_repetition(model, tokenizer, format, repetition_prompts, *r.repetition, report,
                                                 "step " + std::to_string(step));
    metrics.write({{"step", step},
                   {"repetition_ratio", result.ratio},
                   {"repetition_repetitive", result.repetitive},
                   {"repetition_terminated", result.terminated},
                   {"repetition_prompts", result.prompts},
                   {"repetition_report", report.string()}});
    std::fprintf(stderr, "step %lld: repetition ratio %.4f (%lld of %lld responses repeat; %lld terminated) -> %s\n",
                 static_cast<long long>(step), result.ratio, static_cast<long long>(result.repetitive),
                 static_cast<long long>(result.prompts), static_cast<long long>(result.terminated), report.string().c_str());
    last_repetition_step = step;
    outcome.repetition_ratio = result.ratio;
  };
  if (r.repetition && r.repetition->at_start && step == 0) measure();

  // --- train ---
  for (int64_t epoch = state.epoch; epoch < r.data.epochs && step < total_steps; ++epoch) {
    std::vector<PackedRow> rows = epoch_rows(data, r.data, epoch, pad_id);
    auto steps = plan_steps(rows, r.train);
    size_t first = epoch == state.epoch ? static_cast<size_t>(state.step_in_epoch) : 0;
    for (size_t s = first; s < steps.size() && step < total_steps; ++s) {
      auto step_start = std::chrono::steady_clock::now();
      auto [begin, end] = steps[s];
      // Sum-then-divide: every micro-batch's loss sum is divided by the step's loss tokens, so
      // accumulation equals one big batch.
      std::vector<Batch> micro;
      int64_t step_loss_tokens = 0, step_tokens = 0;
      for (size_t b = begin; b < end; b += static_cast<size_t>(r.train.micro_batch_size)) {
        micro.push_back(collate(rows, b, std::min(end, b + static_cast<size_t>(r.train.micro_batch_size)), o.device, pad_id));
        step_loss_tokens += micro.back().loss_tokens;
        step_tokens += micro.back().tokens;
      }
      double loss_sum = 0;
      for (Batch& batch : micro) {
        auto [sum, count] = model->loss_sum(batch.input, batch.labels);
        (sum / static_cast<double>(std::max<int64_t>(step_loss_tokens, 1))).backward();
        loss_sum += sum.item<double>();
      }
      const double loss = loss_sum / static_cast<double>(std::max<int64_t>(step_loss_tokens, 1));
      double grad_norm = r.train.grad_clip > 0 ? torch::nn::utils::clip_grad_norm_(params, r.train.grad_clip)
                                               : torch::nn::utils::clip_grad_norm_(params, 1e30);
      ++step;
      if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
        if (r.train.on_nonfinite == TrainConfig::OnNonFinite::stop)
          fail("step ", step, ": non-finite ", std::isfinite(loss) ? "gradient norm" : "loss",
               " (stopping; set train.on_nonfinite=skip to skip such steps)");
        optimizer->zero_grad();
        ++skipped_steps;
        metrics.write({{"step", step}, {"skipped", std::isfinite(loss) ? "non-finite gradient norm" : "non-finite loss"},
                       {"skipped_steps", skipped_steps}});
        state.epoch = epoch;
        state.step_in_epoch = static_cast<int64_t>(s) + 1;
        continue;
      }
      const double lr = learning_rate(r.train.schedule, step, total_steps);
      for (auto& group : optimizer->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      optimizer->step();
      optimizer->zero_grad();
      tokens_seen += step_tokens;
      outcome.last_loss = loss;
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
      double tokens_per_s = static_cast<double>(step_tokens) / seconds;
      if (step % r.train.log_every == 0 || step == total_steps) {
        nlohmann::json record = {{"step", step},
                                 {"epoch", static_cast<double>(epoch) + static_cast<double>(s + 1) / static_cast<double>(steps.size())},
                                 {"loss", loss},
                                 {"lr", lr},
                                 {"grad_norm", grad_norm},
                                 {"tokens_per_s", tokens_per_s},
                                 {"mfu", nullptr},
                                 {"peak_memory_bytes", peak_memory_bytes(o.device)},
                                 {"tokens_seen", tokens_seen}};
        if (o.device.is_cuda() && o.compute_dtype == torch::kBFloat16) record["mfu"] = flops_per_token * tokens_per_s / 989e12;
        if (skipped_steps) record["skipped_steps"] = skipped_steps;
        if (r.train.val_every > 0 && step % r.train.val_every == 0) record["val_loss"] = validation_loss(model, data, r, pad_id);
        metrics.write(record);
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
        double eta = elapsed / static_cast<double>(step - first_step) * static_cast<double>(total_steps - step);
        std::fprintf(stderr, "%sstep %lld/%lld  loss %.4f  lr %.3g  grad_norm %.3g  %.0f tok/s  ETA %.0fs%s",
                     tty ? "\r" : "", static_cast<long long>(step), static_cast<long long>(total_steps), loss, lr, grad_norm,
                     tokens_per_s, eta, tty ? "   " : "\n");
      }
      state.epoch = epoch;
      state.step_in_epoch = static_cast<int64_t>(s) + 1;
      double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint).count() / 60.0;
      if ((r.train.checkpoint_every_steps > 0 && step % r.train.checkpoint_every_steps == 0) ||
          (r.train.checkpoint_every_minutes > 0 && minutes >= r.train.checkpoint_every_minutes)) {
        checkpoint();
      }
      if (r.repetition && r.repetition->every_steps > 0 && step % r.repetition->every_steps == 0 && step < total_steps) {
        if (tty) std::fprintf(stderr, "\n");
        measure();
      }
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  outcome.steps = step;
  // The last step's checkpoint goes out while validation and the repetition monitor run.
  if (last_checkpoint_step != step || newest_training_checkpoint(out).empty()) checkpoint();
  outcome.validation_loss = validation_loss(model, data, r, pad_id);
  if (outcome.validation_loss >= 0) metrics.write({{"step", step}, {"val_loss", outcome.validation_loss}});
  if (r.repetition && r.repetition->at_end && last_repetition_step != step) measure();
  writer.wait();
  outcome.final_dir = out / "final";
  ExportOptions export_options;
  export_options.overwrite = true;
  export_chat_checkpoint(model->config, checkpoint_tensors(model), r.model.path, format, outcome.final_dir, export_options);
  return outcome;
}

}  // namespace dsalign
