#include "dpo/dpo_trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <iostream>

#include "dpo/dpo_step.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/inspect.h"
#include "train/device_memory.h"
#include "train/metrics.h"
#include "train/run_setup.h"
#include "train/training_checkpoint.h"
#include "util/error.h"
#include "util/files.h"

namespace dsalign {
namespace fs = std::filesystem;

namespace {

// One optimizer step's pairs, in training order.
struct StepPairs {
  std::vector<const TokenizedPair*> pairs;
  std::vector<size_t> ids;  // indices into the training pairs
};

std::vector<StepPairs> epoch_steps(const std::vector<TokenizedPair>& train, const DpoRecipe& r, int64_t epoch) {
  std::vector<StepPairs> steps;
  std::vector<size_t> order = pair_order(train.size(), r.data.seed, epoch);
  const auto per_step = static_cast<size_t>(r.train.global_batch_size);
  for (size_t begin = 0; begin < order.size(); begin += per_step) {
    StepPairs s;
    for (size_t k = begin; k < std::min(order.size(), begin + per_step); ++k) {
      s.pairs.push_back(&train[order[k]]);
      s.ids.push_back(order[k]);
    }
    steps.push_back(std::move(s));
  }
  return steps;
}

CausalLM load_reference(const fs::path& dir, const DecoderOptions& options) {
  CausalLM model = load_model(dir, options);
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  model->eval();
  return model;
}

}  // namespace

DpoOutcome run_dpo(const DpoRecipe& r, const RecipeFile& file, const std::string& resume) {
  // --- setup ---
  const fs::path out = r.run.output_dir;
  prepare_run_directory(r.run, !resume.empty());
  write_file_atomic(out / "config.yaml", resolved_dpo_recipe_yaml(r, file));

  const fs::path policy_dir = resolve_model_dir(r.model.path, "model.path");
  Tokenizer tokenizer = Tokenizer::load(policy_dir);
  ChatFormat format = resolve_chat_format(r.data.chat_template, tokenizer);
  PreferenceData data = prepare_preference_data(r.data, tokenizer, format);
  std::cerr << "data: " << data.summary() << "\n";
  const int32_t pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  const DecoderOptions o = decoder_options(r.model, file.path);
  const bool needs_reference = r.loss.needs_reference();
  const bool precomputed = needs_reference && r.reference.mode == ReferenceSection::Mode::precomputed;

  DpoOutcome outcome;
  // The reference first: when precomputed, it is freed before the policy loads, so the two are
  // never resident together.
  std::optional<CausalLM> live_reference;
  ReferenceTable train_table, validation_table;
  if (needs_reference) {
    const fs::path reference_dir = resolve_model_dir(r.reference.path, "dpo.reference.path");
    const DecoderOptions ro = reference_options(o);
    const ModelConfig reference_config = load_model_config(reference_dir);
    const int64_t policy_vocab = load_model_config(policy_dir).vocab_size;
    if (reference_config.vocab_size != policy_vocab)
      fail(r.reference.path.string(), " (dpo.reference.path): vocab_size ", reference_config.vocab_size,
           " differs from the policy's ", policy_vocab);
    outcome.reference_bytes =
        static_cast<double>(count_parameters(reference_config).total) * static_cast<double>(c10::elementSize(ro.param_dtype));
    if (precomputed) {
      fs::path cache_dir = r.reference.cache_dir.empty() ? default_reference_cache_dir() : r.reference.cache_dir;
      fs::path cache = cache_dir / (reference_cache_key(weights_fingerprint(reference_dir, cache_dir), ro, data.train,
                                                        data.validation) +
                                    ".safetensors");
      if (auto tables = read_reference_cache(cache, data.train.size(), data.validation.size())) {
        std::tie(train_table, validation_table) = *tables;
        std::cerr << "reference: precomputed log-probs from " << cache.string() << "\n";
      } else {
        CausalLM reference = load_reference(reference_dir, ro);
        train_table = compute_reference_table(reference, data.train, r.data.max_seq_len, r.data.packing, r.reference.batch_size,
                                              pad_id, "reference log-probs (train)");
        validation_table = compute_reference_table(reference, data.validation, r.data.max_seq_len, r.data.packing,
                                                   r.reference.batch_size, pad_id, "reference log-probs (validation)");
        write_reference_cache(cache, train_table, validation_table);
        std::cerr << "reference: log-probs written to " << cache.string() << "\n";
      }
      std::fprintf(stderr, "reference: not resident during training (saves %.2f GiB of weights)\n",
                   outcome.reference_bytes / (1024.0 * 1024.0 * 1024.0));
    } else {
      live_reference = load_reference(reference_dir, ro);
      outcome.reference_resident = true;
      std::fprintf(stderr, "reference: live, %.2f GiB of frozen %s weights resident (dpo.reference.mode=precomputed frees them)\n",
                   outcome.reference_bytes / (1024.0 * 1024.0 * 1024.0), dtype_name(ro.param_dtype).c_str());
    }
  }
  torch::manual_seed(static_cast<uint64_t>(r.run.seed));
  CausalLM model = load_model(policy_dir, o);
  if (tokenizer.vocab_size() > model->config.vocab_size)
    fail(policy_dir.string(), ": the tokenizer has ", tokenizer.vocab_size(), " tokens but the model's vocab_size is ",
         model->config.vocab_size);
  auto optimizer = make_optimizer(model, r.train);
  const ReferenceSource train_reference{live_reference ? &*live_reference : nullptr, precomputed ? &train_table : nullptr};
  const ReferenceSource validation_reference{live_reference ? &*live_reference : nullptr,
                                             precomputed ? &validation_table : nullptr};

  const auto per_step = static_cast<size_t>(r.train.global_batch_size);
  int64_t total_steps = static_cast<int64_t>((data.train.size() + per_step - 1) / per_step) * r.data.epochs;
  if (r.train.max_steps > 0) total_steps = std::min(total_steps, r.train.max_steps);
  const bool tty = ::isatty(STDERR_FILENO);

  TrainingState state;
  if (!resume.empty()) state = resume_training(out, resume, model, *optimizer);
  MetricsLog metrics(out / "metrics.jsonl", !resume.empty());
  if (resume.empty())
    metrics.write({{"step", 0},
                   {"loss_type", dpo_loss_name(r.loss.type)},
                   {"beta", r.loss.beta},
                   {"reference_mode", !needs_reference ? "none" : precomputed ? "precomputed" : "live"},
                   {"reference_bytes", outcome.reference_bytes},
                   {"reference_resident", outcome.reference_resident},
                   {"train_pairs", data.train.size()},
                   {"validation_pairs", data.validation.size()}});
  int64_t& step = state.step;
  CheckpointWriter writer(r.train.async_checkpoint);
  int64_t last_checkpoint_step = step;
  auto run_start = std::chrono::steady_clock::now();
  auto last_checkpoint = run_start;
  const int64_t first_step = step;
  auto params = model->parameters();
  auto checkpoint = [&] {
    writer.submit(training_snapshot(model, *optimizer, out, state, format, policy_dir, r.train.keep_last));
    last_checkpoint = std::chrono::steady_clock::now();
    last_checkpoint_step = step;
  };
  auto validate = [&] {
    return evaluate_pairs(model, data.validation, validation_reference, r.loss, r.data.max_seq_len, r.data.packing,
                          r.train.micro_batch_size, pad_id);
  };

  // Held-out pairs before the first step: where the rewards start (0 when the reference is the
  // policy's own starting point).
  if (step == 0 && !data.validation.empty()) {
    nlohmann::json record = {{"step", 0}};
    record.update(validate().to_json("val_"));
    metrics.write(record);
    outcome.first_validation_accuracy = record["val_rewards/accuracy"];
  }

  // --- train ---
  for (int64_t epoch = state.epoch; epoch < r.data.epochs && step < total_steps; ++epoch) {
    std::vector<StepPairs> steps = epoch_steps(data.train, r, epoch);
    size_t first = epoch == state.epoch ? static_cast<size_t>(state.step_in_epoch) : 0;
    for (size_t s = first; s < steps.size() && step < total_steps; ++s) {
      auto step_start = std::chrono::steady_clock::now();
      const StepPairs& sp = steps[s];
      std::vector<PackedRow> rows = pair_rows(sp.pairs, r.data.max_seq_len, r.data.packing, pad_id);
      const double chosen_tokens = chosen_loss_tokens(sp.pairs);
      const auto step_pairs = static_cast<int64_t>(sp.pairs.size());
      DpoMetricSums sums;
      int64_t step_tokens = 0;
      for (size_t b = 0; b < rows.size(); b += static_cast<size_t>(r.train.micro_batch_size)) {
        PairBatch batch = collate_pairs(rows, b, std::min(rows.size(), b + static_cast<size_t>(r.train.micro_batch_size)),
                                        sp.ids, o.device, pad_id);
        PairLogps logps = score_pairs(model, batch, train_reference);
        DpoTerms terms = dpo_terms(r.loss, logps);
        torch::Tensor loss = micro_batch_loss(r.loss, terms, logps, step_pairs, chosen_tokens);
        loss.backward();
        sums.loss += loss.item<double>();
        sums.add(terms);
        step_tokens += batch.batch.tokens;
      }
      double grad_norm = torch::nn::utils::clip_grad_norm_(params, r.train.grad_clip > 0 ? r.train.grad_clip : 1e30);
      ++step;
      state.epoch = epoch;
      state.step_in_epoch = static_cast<int64_t>(s) + 1;
      if (!std::isfinite(sums.loss) || !std::isfinite(grad_norm)) {
        if (r.train.on_nonfinite == TrainConfig::OnNonFinite::stop)
          fail("step ", step, ": non-finite ", std::isfinite(sums.loss) ? "gradient norm" : "loss",
               " (stopping; set train.on_nonfinite=skip to skip such steps)");
        optimizer->zero_grad();
        ++state.skipped_steps;
        metrics.write({{"step", step},
                       {"skipped", std::isfinite(sums.loss) ? "non-finite gradient norm" : "non-finite loss"},
                       {"skipped_steps", state.skipped_steps}});
        continue;
      }
      const double lr = learning_rate(r.train.schedule, step, total_steps);
      set_learning_rate(*optimizer, lr);
      optimizer->step();
      optimizer->zero_grad();
      state.tokens_seen += step_tokens;
      outcome.last_loss = sums.loss;
      const double accuracy = sums.correct / static_cast<double>(std::max<int64_t>(sums.pairs, 1));
      if (outcome.first_accuracy < 0) outcome.first_accuracy = accuracy;
      outcome.last_accuracy = accuracy;
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
      double tokens_per_s = static_cast<double>(step_tokens) / seconds;
      if (step % r.train.log_every == 0 || step == total_steps) {
        nlohmann::json record = {{"step", step},
                                 {"epoch", static_cast<double>(epoch) + static_cast<double>(s + 1) / static_cast<double>(steps.size())},
                                 {"lr", lr},
                                 {"grad_norm", grad_norm},
                                 {"pairs", sums.pairs},
                                 {"tokens_per_s", tokens_per_s},
                                 {"peak_memory_bytes", peak_memory_bytes(o.device)},
                                 {"tokens_seen", state.tokens_seen}};
        record.update(sums.to_json());
        if (state.skipped_steps) record["skipped_steps"] = state.skipped_steps;
        if (r.train.val_every > 0 && step % r.train.val_every == 0 && !data.validation.empty())
          record.update(validate().to_json("val_"));
        metrics.write(record);
        double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
        double eta = elapsed / static_cast<double>(step - first_step) * static_cast<double>(total_steps - step);
        std::fprintf(stderr, "%sstep %lld/%lld  loss %.4f  reward acc %.2f  margin %.3f  lr %.3g  grad_norm %.3g  %.0f tok/s  ETA %.0fs%s",
                     tty ? "\r" : "", static_cast<long long>(step), static_cast<long long>(total_steps), sums.loss, accuracy,
                     sums.margin / static_cast<double>(std::max<int64_t>(sums.pairs, 1)), lr, grad_norm, tokens_per_s, eta,
                     tty ? "   " : "\n");
      }
      double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - last_checkpoint).count() / 60.0;
      if ((r.train.checkpoint_every_steps > 0 && step % r.train.checkpoint_every_steps == 0) ||
          (r.train.checkpoint_every_minutes > 0 && minutes >= r.train.checkpoint_every_minutes))
        checkpoint();
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  outcome.steps = step;
  if (last_checkpoint_step != step || newest_training_checkpoint(out).empty()) checkpoint();
  if (!data.validation.empty()) {
    DpoMetricSums v = validate();
    nlohmann::json record = {{"step", step}};
    record.update(v.to_json("val_"));
    metrics.write(record);
    outcome.validation_accuracy = v.correct / static_cast<double>(std::max<int64_t>(v.pairs, 1));
    std::fprintf(stderr, "validation (%lld pairs): loss %.4f, reward accuracy %.3f, margin %.4f\n",
                 static_cast<long long>(v.pairs), v.loss, outcome.validation_accuracy,
                 v.margin / static_cast<double>(std::max<int64_t>(v.pairs, 1)));
  }
  writer.wait();
  outcome.final_dir = export_final(model, out, policy_dir, format);
  return outcome;
}

}  // namespace dsalign
