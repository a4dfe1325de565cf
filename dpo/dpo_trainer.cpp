#include "dpo/dpo_trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "dist/data_parallel.h"
#include "dist/sharded_units.h"
#include "dpo/dpo_step.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/inspect.h"
#include "train/device_memory.h"
#include "train/metrics.h"
#include "train/run_setup.h"
#include "train/step_engine.h"
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

// The frozen reference; under zero3 sharded like the policy (forward only, compute dtype).
CausalLM load_reference(const fs::path& dir, const DecoderOptions& options, ShardStrategy strategy, const DpoRecipe& r,
                        const Dist& dist) {
  if (strategy == ShardStrategy::zero3) return load_sharded_model(dist, dir, options, sharded_units_options(r.dist), true);
  CausalLM model = load_model(dir, options);
  for (auto& p : model->parameters()) p.set_requires_grad(false);
  model->eval();
  return model;
}

// The reference log-probs of every pair: each rank scores every world_size-th pair and the sums
// make the whole table on every rank.
ReferenceTable reference_table(CausalLM& reference, const std::vector<TokenizedPair>& pairs, const DpoRecipe& r,
                               int32_t pad_id, const std::string& label, const Dist& dist) {
  if (dist.single())
    return compute_reference_table(reference, pairs, r.data.max_seq_len, r.data.packing, r.reference.batch_size, pad_id, label);
  std::vector<TokenizedPair> mine;
  for (size_t i = static_cast<size_t>(dist.rank()); i < pairs.size(); i += static_cast<size_t>(dist.world_size()))
    mine.push_back(pairs[i]);
  ReferenceTable part = compute_reference_table(reference, mine, r.data.max_seq_len, r.data.packing, r.reference.batch_size,
                                                pad_id, label, pairs.empty() ? nullptr : &pairs.front());
  std::vector<double> flat(2 * pairs.size(), 0.0);
  for (size_t k = 0; k < mine.size(); ++k) {
    const size_t i = static_cast<size_t>(dist.rank()) + k * static_cast<size_t>(dist.world_size());
    flat[2 * i] = part.chosen[k];
    flat[2 * i + 1] = part.rejected[k];
  }
  flat = dist.all_reduce_sum(flat, "reference log-probs");
  ReferenceTable table;
  for (size_t i = 0; i < pairs.size(); ++i) {
    table.chosen.push_back(flat[2 * i]);
    table.rejected.push_back(flat[2 * i + 1]);
  }
  return table;
}

// Validation over all ranks: rows dealt round-robin, sums all-reduced.
DpoMetricSums validate_pairs(CausalLM& model, const std::vector<TokenizedPair>& pairs, const ReferenceSource& reference,
                             const DpoRecipe& r, int32_t pad_id, const Dist& dist) {
  DpoMetricSums mine = evaluate_pairs(model, pairs, reference, r.loss, r.data.max_seq_len, r.data.packing,
                                      r.train.micro_batch_size, pad_id, dist.world_size(), dist.rank());
  return DpoMetricSums::from_vector(dist.all_reduce_sum(mine.to_vector(), "validation metrics"));
}

}  // namespace

DpoOutcome run_dpo(const DpoRecipe& r, const RecipeFile& file, const std::string& resume, const Dist& dist) {
  // --- setup ---
  const fs::path out = r.run.output_dir;
  const ShardStrategy strategy = resolve_strategy(r.dist, dist.world_size());
  prepare_run_on_ranks(r.run, !resume.empty(), resolved_dpo_recipe_yaml(r, file), file.path, dist);

  const fs::path policy_dir = resolve_model_dir(r.model.path, "model.path");
  Tokenizer tokenizer = Tokenizer::load(policy_dir);
  ChatFormat format = resolve_chat_format(r.data.chat_template, tokenizer);
  PreferenceData data = prepare_preference_data(r.data, tokenizer, format);
  if (dist.is_main()) std::cerr << "data: " << data.summary() << "\n";
  const int32_t pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  DecoderOptions o = decoder_options(r.model, file.path);
  if (o.device.is_cuda() && !dist.single()) o.device = torch::Device(torch::kCUDA, static_cast<int8_t>(dist.local_rank()));
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
      auto tables = read_reference_cache(cache, data.train.size(), data.validation.size());
      // Every rank scores (a collective) unless every rank found the cache.
      if (dist.all_reduce_max(tables ? 0 : 1, "reference cache") == 0) {
        std::tie(train_table, validation_table) = *tables;
        if (dist.is_main()) std::cerr << "reference: precomputed log-probs from " << cache.string() << "\n";
      } else {
        CausalLM reference = load_reference(reference_dir, ro, strategy, r, dist);
        train_table = reference_table(reference, data.train, r, pad_id, "reference log-probs (train)", dist);
        validation_table = reference_table(reference, data.validation, r, pad_id, "reference log-probs (validation)", dist);
        if (dist.is_main()) {
          write_reference_cache(cache, train_table, validation_table);
          std::cerr << "reference: log-probs written to " << cache.string() << "\n";
        }
      }
      if (dist.is_main())
        std::fprintf(stderr, "reference: not resident during training (saves %.2f GiB of weights)\n",
                     outcome.reference_bytes / (1024.0 * 1024.0 * 1024.0));
    } else {
      live_reference = load_reference(reference_dir, ro, strategy, r, dist);
      outcome.reference_resident = true;
      if (dist.is_main())
        std::fprintf(stderr, "reference: live, %.2f GiB of frozen %s weights resident (dpo.reference.mode=precomputed frees them)\n",
                     outcome.reference_bytes / (1024.0 * 1024.0 * 1024.0), dtype_name(ro.param_dtype).c_str());
    }
  }
  torch::manual_seed(static_cast<uint64_t>(r.run.seed));
  // Under zero3 each rank reads only its rows of every tensor.
  CausalLM model = strategy == ShardStrategy::zero3 ? load_sharded_model(dist, policy_dir, o, sharded_units_options(r.dist))
                                                    : load_model(policy_dir, o);
  if (tokenizer.vocab_size() > model->config.vocab_size)
    fail(policy_dir.string(), ": the tokenizer has ", tokenizer.vocab_size(), " tokens but the model's vocab_size is ",
         model->config.vocab_size);
  // Weights and RNG of a resumed run go into the whole model, before DataParallel shards it.
  ResumedRun resumed = resume_on_ranks(out, resume, model, dist);
  DataParallel dp(dist, strategy, model, r.train, sharded_units_options(r.dist));
  resumed.restore_optimizer(dp);
  if (dist.is_main() && !dist.single())
    std::fprintf(stderr, "dist: %lld ranks (%s), strategy %s\n", static_cast<long long>(dist.world_size()),
                 dist.backend_name().c_str(), shard_strategy_name(strategy));
  const ReferenceSource train_reference{live_reference ? &*live_reference : nullptr, precomputed ? &train_table : nullptr};
  const ReferenceSource validation_reference{live_reference ? &*live_reference : nullptr,
                                             precomputed ? &validation_table : nullptr};

  const auto per_step = static_cast<size_t>(r.train.global_batch_size);
  int64_t total_steps = static_cast<int64_t>((data.train.size() + per_step - 1) / per_step) * r.data.epochs;
  if (r.train.max_steps > 0) total_steps = std::min(total_steps, r.train.max_steps);
  const bool tty = ::isatty(STDERR_FILENO) && dist.is_main();

  TrainingState state = resumed.state;
  // Rank 0 writes metrics, checkpoints and the progress line; every rank takes part in collectives.
  std::optional<MetricsLog> metrics = open_metrics(out, !resume.empty(), dist);
  if (resume.empty() && metrics)
    metrics->write({{"step", 0},
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
  auto checkpoint = [&] {
    // Every rank writes its part (in the background); rank 0 publishes.
    writer.submit(rank_checkpoint(model, dp, dist, out, state, format, policy_dir, r.train.keep_last, r.dist.timeout_minutes));
    last_checkpoint = std::chrono::steady_clock::now();
    last_checkpoint_step = step;
  };
  auto validate = [&] { return validate_pairs(model, data.validation, validation_reference, r, pad_id, dist); };

  // Held-out pairs before the first step: where the rewards start (0 when the reference is the
  // policy's own starting point).
  if (step == 0 && !data.validation.empty()) {
    nlohmann::json record = {{"step", 0}};
    record.update(validate().to_json("val_"));
    if (metrics) metrics->write(record);
    outcome.first_validation_accuracy = record["val_rewards/accuracy"];
  }

  // --- train ---
  for (int64_t epoch = state.epoch; epoch < r.data.epochs && step < total_steps; ++epoch) {
    std::vector<StepPairs> steps = epoch_steps(data.train, r, epoch);
    size_t first = epoch == state.epoch ? static_cast<size_t>(state.step_in_epoch) : 0;
    for (size_t s = first; s < steps.size() && step < total_steps; ++s) {
      auto step_start = std::chrono::steady_clock::now();
      const StepPairs& sp = steps[s];
      // Every rank knows the whole step's pairs, so the normalisers (pairs, chosen tokens) are global.
      const RankStep plan = plan_rank_step(pair_rows(sp.pairs, r.data.max_seq_len, r.data.packing, pad_id), dist,
                                           r.train.micro_batch_size);
      const double chosen_tokens = chosen_loss_tokens(sp.pairs);
      const auto step_pairs = static_cast<int64_t>(sp.pairs.size());
      DpoMetricSums local;
      double local_tokens = 0;
      const MicroBatch micro = [&](const std::vector<PackedRow>& rows, size_t b, size_t e, double weight) {
        PairBatch batch = collate_pairs(rows, b, e, sp.ids, o.device, pad_id);
        PairLogps logps = score_pairs(model, batch, train_reference);
        DpoTerms terms = dpo_terms(r.loss, logps);
        torch::Tensor loss = micro_batch_loss(r.loss, terms, logps, step_pairs, chosen_tokens) * weight;
        loss.backward();
        if (weight == 0) return;  // a zero3 filler: it only kept the ranks' collectives in step
        local.loss += loss.item<double>();
        local.add(terms);
        local_tokens += static_cast<double>(batch.batch.tokens);
      };
      const double grad_norm = run_micro_batches(plan, r.train.micro_batch_size, dp, r.train.grad_clip, micro);
      std::vector<double> summed = local.to_vector();
      summed.push_back(local_tokens);
      summed = dist.all_reduce_sum(summed, "step metrics");
      const int64_t step_tokens = static_cast<int64_t>(summed.back());
      summed.pop_back();
      const DpoMetricSums sums = DpoMetricSums::from_vector(summed);
      ++step;
      state.epoch = epoch;
      state.step_in_epoch = static_cast<int64_t>(s) + 1;
      if (!std::isfinite(sums.loss) || !std::isfinite(grad_norm)) {
        if (r.train.on_nonfinite == TrainConfig::OnNonFinite::stop)
          fail("step ", step, ": non-finite ", std::isfinite(sums.loss) ? "gradient norm" : "loss",
               " (stopping; set train.on_nonfinite=skip to skip such steps)");
        dp.zero_grad();
        ++state.skipped_steps;
        if (metrics) metrics->write({{"step", step},
                       {"skipped", std::isfinite(sums.loss) ? "non-finite gradient norm" : "non-finite loss"},
                       {"skipped_steps", state.skipped_steps}});
        continue;
      }
      const double lr = learning_rate(r.train.schedule, step, total_steps);
      dp.step(lr);
      state.tokens_seen += step_tokens;
      outcome.last_loss = sums.loss;
      const double accuracy = sums.correct / static_cast<double>(std::max<int64_t>(sums.pairs, 1));
      if (outcome.first_accuracy < 0) outcome.first_accuracy = accuracy;
      outcome.last_accuracy = accuracy;
      double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - step_start).count();
      double tokens_per_s = static_cast<double>(step_tokens) / seconds;
      // Every rank takes the same branch: the peak-memory gather is a collective, only on logged steps.
      const bool logging = step % r.train.log_every == 0 || step == total_steps;
      const std::vector<double> peaks =
          logging ? dist.all_gather_values(static_cast<double>(peak_memory_bytes(o.device)), "peak memory")
                  : std::vector<double>{};
      const bool validating = r.train.val_every > 0 && step % r.train.val_every == 0 && !data.validation.empty();
      const DpoMetricSums validation = validating ? validate() : DpoMetricSums{};
      if (dist.is_main() && logging) {
        const double peak = *std::max_element(peaks.begin(), peaks.end());
        nlohmann::json record = {{"step", step},
                                 {"epoch", static_cast<double>(epoch) + static_cast<double>(s + 1) / static_cast<double>(steps.size())},
                                 {"lr", lr},
                                 {"grad_norm", grad_norm},
                                 {"pairs", sums.pairs},
                                 {"tokens_per_s", tokens_per_s},
                                 {"peak_memory_bytes", static_cast<int64_t>(peak)},
                                 {"tokens_seen", state.tokens_seen}};
        record.update(sums.to_json());
        if (!dist.single()) {
          record["world_size"] = dist.world_size();
          record["peak_memory_bytes_per_rank"] = std::vector<int64_t>(peaks.begin(), peaks.end());
          record["reduced_bytes"] = dp.last_step_traffic().reduced;
          record["gathered_bytes"] = dp.last_step_traffic().gathered;
          if (dp.strategy() == ShardStrategy::zero3) {
            record["gathered_peak_bytes"] = dp.last_step_traffic().gathered_peak;
            record["gathered_after_step_bytes"] = dp.last_step_traffic().gathered_after;
          }
        }
        if (state.skipped_steps) record["skipped_steps"] = state.skipped_steps;
        if (validating) record.update(validation.to_json("val_"));
        metrics->write(record);
        char what[96];
        std::snprintf(what, sizeof what, "loss %.4f  reward acc %.2f  margin %.3f", sums.loss, accuracy,
                      sums.margin / static_cast<double>(std::max<int64_t>(sums.pairs, 1)));
        print_step_progress(dist, step, total_steps, what, lr, grad_norm, tokens_per_s,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count(),
                            step - first_step);
      }
      if (checkpoint_due(r.train, step, last_checkpoint, dist)) checkpoint();
    }
  }
  if (tty) std::fprintf(stderr, "\n");
  outcome.steps = step;
  const bool last_missing = last_checkpoint_step != step || newest_training_checkpoint(out).empty();
  if (dist.all_reduce_max(dist.is_main() && last_missing ? 1 : 0, "last checkpoint") > 0) checkpoint();
  if (!data.validation.empty()) {
    DpoMetricSums v = validate();
    nlohmann::json record = {{"step", step}};
    record.update(v.to_json("val_"));
    if (metrics) metrics->write(record);
    outcome.validation_accuracy = v.correct / static_cast<double>(std::max<int64_t>(v.pairs, 1));
    if (dist.is_main())
      std::fprintf(stderr, "validation (%lld pairs): loss %.4f, reward accuracy %.3f, margin %.4f\n",
                   static_cast<long long>(v.pairs), v.loss, outcome.validation_accuracy,
                   v.margin / static_cast<double>(std::max<int64_t>(v.pairs, 1)));
  }
  writer.wait();
  export_final_on_ranks(model, dp, dist, out, step, policy_dir, format);
  outcome.final_dir = out / "final";
  return outcome;
}

}  // namespace dsalign
