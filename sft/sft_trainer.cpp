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
#include "train/run_setup.h"
#include "train/training_checkpoint.h"
#include "train/metrics.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;

namespace {

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

}  // namespace

SftOutcome run_sft(const SftRecipe& r, const RecipeFile& file, const std::string& resume) {
  // --- setup ---
  const fs::path out = r.run.output_dir;
  prepare_run_directory(r.run, !resume.empty(), {"repetition"});
  write_file_atomic(out / "config.yaml", resolved_recipe_yaml(r, file));

  const fs::path model_dir = resolve_model_dir(r.model.path, "model.path");
  Tokenizer tokenizer = Tokenizer::load(model_dir);
  ChatFormat format = resolve_chat_format(r.data.chat_template, tokenizer);
  SftData data = prepare_sft_data(r.data, tokenizer, format, file.path.parent_path());
  std::cerr << "data: " << data.summary() << "\n";
  const int32_t pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));

  const DecoderOptions o = decoder_options(r.model, file.path);
  torch::manual_seed(static_cast<uint64_t>(r.run.seed));
  CausalLM model = load_model(model_dir, o);
  if (tokenizer.vocab_size() > model->config.vocab_size)
    fail(model_dir.string(), ": the tokenizer has ", tokenizer.vocab_size(), " tokens but the model's vocab_size is ",
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
  if (!resume.empty()) state = resume_training(out, resume, model, *optimizer);
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
    writer.submit(training_snapshot(model, *optimizer, out, state, format, model_dir, r.train.keep_last));
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
      set_learning_rate(*optimizer, lr);
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
  outcome.final_dir = export_final(model, out, model_dir, format);
  return outcome;
}

}  // namespace dsalign
