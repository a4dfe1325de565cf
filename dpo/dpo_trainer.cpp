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
#include "train/device_sums.h"
#include "train/metrics.h"
#include "train/run_setup.h"
#include "train/step_engine.h"
#include "train/trainer_run.h"
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
  CausalLM model = load_model(dir, options, frozen_model_reads());
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

// The frozen reference as training uses it: a live model, or precomputed tables (the model
// scored every pair, across ranks, and was freed), or none (simpo).
struct Reference {
  std::optional<CausalLM> live;
  ReferenceTable train, validation;
  bool precomputed = false;
  std::string mode = "none";
  ReferenceSource source(bool training) const {
    return {live ? const_cast<CausalLM*>(&*live) : nullptr, precomputed ? (training ? &train : &validation) : nullptr};
  }
};

Reference prepare_reference(const DpoRecipe& r, const PreferenceData& data, const fs::path& policy_dir, const DecoderOptions& o,
                            ShardStrategy strategy, int32_t pad_id, const Dist& dist, DpoOutcome& outcome) {
  Reference ref;
  if (!r.loss.needs_reference()) return ref;
  ref.precomputed = r.reference.mode == ReferenceSection::Mode::precomputed;
  ref.mode = ref.precomputed ? "precomputed" : "live";
  const fs::path reference_dir = resolve_model_dir(r.reference.path, "dpo.reference.path");
  const DecoderOptions ro = reference_options(o);
  const ModelConfig reference_config = load_model_config(reference_dir);
  const int64_t policy_vocab = load_model_config(policy_dir).vocab_size;
  if (reference_config.vocab_size != policy_vocab)
    fail(r.reference.path.string(), " (dpo.reference.path): vocab_size ", reference_config.vocab_size,
         " differs from the policy's ", policy_vocab);
  outcome.reference_bytes =
      static_cast<double>(count_parameters(reference_config).total) * static_cast<double>(c10::elementSize(ro.param_dtype));
  const double gib = outcome.reference_bytes / (1024.0 * 1024.0 * 1024.0);
  if (!ref.precomputed) {
    ref.live = load_reference(reference_dir, ro, strategy, r, dist);
    outcome.reference_resident = true;
    if (dist.is_main())
      std::fprintf(stderr, "reference: live, %.2f GiB of frozen %s weights resident (dpo.reference.mode=precomputed frees them)\n",
                   gib, dtype_name(ro.param_dtype).c_str());
    return ref;
  }
  fs::path cache_dir = r.reference.cache_dir.empty() ? default_reference_cache_dir() : r.reference.cache_dir;
  fs::path cache = cache_dir / (reference_cache_key(weights_fingerprint(reference_dir, cache_dir), ro, data.train,
                                                    data.validation) + ".safetensors");
  auto tables = read_reference_cache(cache, data.train.size(), data.validation.size());
  // Every rank scores (a collective) unless every rank found the cache.
  if (dist.all_reduce_max(tables ? 0 : 1, "reference cache") == 0) {
    std::tie(ref.train, ref.validation) = *tables;
    if (dist.is_main()) std::cerr << "reference: precomputed log-probs from " << cache.string() << "\n";
  } else {
    CausalLM reference = load_reference(reference_dir, ro, strategy, r, dist);
    ref.train = reference_table(reference, data.train, r, pad_id, "reference log-probs (train)", dist);
    ref.validation = reference_table(reference, data.validation, r, pad_id, "reference log-probs (validation)", dist);
    if (dist.is_main()) {
      write_reference_cache(cache, ref.train, ref.validation);
      std::cerr << "reference: log-probs written to " << cache.string() << "\n";
    }
  }
  if (dist.is_main()) std::fprintf(stderr, "reference: not resident during training (saves %.2f GiB of weights)\n", gib);
  return ref;
}

// One optimizer step over this rank's pair rows: the policy (and live reference) forward, the
// loss normalised by the step's pairs (and chosen tokens) over all ranks, backward; the metric
// sums and tokens over all ranks and the global gradient norm.
struct TrainedStep {
  DpoMetricSums sums;
  double grad_norm = 0;
  int64_t tokens = 0;
};
TrainedStep train_step(CausalLM& model, DataParallel& dp, const StepPairs& sp, const ReferenceSource& reference,
                       const DpoRecipe& r, const DecoderOptions& o, int32_t pad_id, const Dist& dist) {
  // Every rank knows the whole step's pairs, so the normalisers (pairs, chosen tokens) are global.
  const RankStep plan = plan_rank_step(pair_rows(sp.pairs, r.data.max_seq_len, r.data.packing, pad_id), dist,
                                       r.train.micro_batch_size);
  const double chosen_tokens = chosen_loss_tokens(sp.pairs);
  const auto step_pairs = static_cast<int64_t>(sp.pairs.size());
  DeviceSums figures;  // on the device: read once, after the step's micro-batches
  int64_t local_pairs = 0;
  double local_tokens = 0;
  const MicroBatch micro = [&](const std::vector<PackedRow>& rows, size_t b, size_t e, double weight) {
    PairBatch batch = collate_pairs(rows, b, e, sp.ids, o.device, pad_id, model->uses_varlen_attention());
    PairLogps logps = score_pairs(model, batch, reference);
    DpoTerms terms = dpo_terms(r.loss, logps);
    torch::Tensor loss = micro_batch_loss(r.loss, terms, logps, step_pairs, chosen_tokens) * weight;
    loss.backward();
    if (weight == 0) return;  // a zero3 filler: it only kept the ranks' collectives in step
    figures.add(dpo_metric_figures(terms, loss));
    local_pairs += terms.losses.size(0);
    local_tokens += static_cast<double>(batch.batch.tokens);
  };
  TrainedStep out;
  out.grad_norm = run_micro_batches(plan, r.train.micro_batch_size, dp, r.train.grad_clip, micro);
  std::vector<double> summed = DpoMetricSums::from_figures(figures.read(7), local_pairs).to_vector();
  summed.push_back(local_tokens);
  summed = dist.all_reduce_sum(summed, "step metrics");
  out.tokens = static_cast<int64_t>(summed.back());
  summed.pop_back();
  out.sums = DpoMetricSums::from_vector(summed);
  return out;
}

}  // namespace

DpoOutcome run_dpo(const DpoRecipe& r, const RecipeFile& file, const std::string& resume, const Dist& dist) {
  // --- setup ---
  TrainerRun run({r.run, r.train, r.dist, resolved_dpo_recipe_yaml(r, file), file.path, {"eval"}, resume}, dist);
  const fs::path policy_dir = resolve_model_dir(r.model.path, "model.path");
  if (r.loss.needs_reference()) resolve_model_dir(r.reference.path, "dpo.reference.path");  // before the data
  if (!r.reference.cache_dir.empty()) check_output_path(r.reference.cache_dir, "dpo.reference.cache_dir", OutputKind::directory);
  Tokenizer tokenizer = Tokenizer::load(policy_dir);
  ChatFormat format = resolve_chat_format(r.data.chat_template, tokenizer);
  PreferenceData data = prepare_preference_data(r.data, tokenizer, format);
  if (dist.is_main()) std::cerr << "data: " << data.summary() << "\n";
  const int32_t pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  const DecoderOptions o = on_rank_device(decoder_options(r.model, file.path), dist);
  DpoOutcome outcome;
  // The reference first: when precomputed, it is freed before the policy loads.
  Reference reference = prepare_reference(r, data, policy_dir, o, run.strategy(), pad_id, dist, outcome);
  run.load_model(policy_dir, o, tokenizer.vocab_size(), format);
  CausalLM& model = run.model();
  const ReferenceSource train_reference = reference.source(true), validation_reference = reference.source(false);

  const auto per_step = static_cast<size_t>(r.train.global_batch_size);
  int64_t total_steps = static_cast<int64_t>((data.train.size() + per_step - 1) / per_step) * r.data.epochs;
  if (r.train.max_steps > 0) total_steps = std::min(total_steps, r.train.max_steps);
  run.set_total_steps(total_steps);
  if (!run.resuming() && run.metrics())
    run.metrics()->write({{"step", 0},
                          {"loss_type", dpo_loss_name(r.loss.type)},
                          {"beta", r.loss.beta},
                          {"reference_mode", reference.mode},
                          {"reference_bytes", outcome.reference_bytes},
                          {"reference_resident", outcome.reference_resident},
                          {"train_pairs", data.train.size()},
                          {"validation_pairs", data.validation.size()}});
  auto validate = [&] { return validate_pairs(model, data.validation, validation_reference, r, pad_id, dist); };
  // Held-out pairs before the first step: where the rewards start (0 when the reference is the
  // policy's own starting point).
  if (run.step() == 0 && !data.validation.empty()) {
    nlohmann::json record = {{"step", 0}};
    record.update(validate().to_json("val_"));
    if (run.metrics()) run.metrics()->write(record);
    outcome.first_validation_accuracy = record["val_rewards/accuracy"];
  }

  int64_t last_eval_step = -1;
  auto evaluate = [&] {
    last_eval_step = run.step();
    run_eval_monitor(model, tokenizer, *r.eval, run.step(), run.metrics(), r.run.output_dir, dist);
  };
  if (r.eval && r.eval->at_start && run.step() == 0) evaluate();
  // The eval of a resumed run's checkpoint step ran after the checkpoint; the resume dropped its
  // line (train/run_setup's truncate_metrics), so it runs again here.
  if (run.resuming() && run.step() > 0 && run.step() < total_steps && r.eval && eval_due(*r.eval, run.step(), total_steps))
    evaluate();

  // --- train ---
  std::pair<int64_t, DpoMetricSums> last_validation = {-1, {}};  // the newest validation and its step
  const TrainingState start = run.state();
  for (int64_t epoch = start.epoch; epoch < r.data.epochs && run.step() < total_steps; ++epoch) {
    std::vector<StepPairs> steps = epoch_steps(data.train, r, epoch);
    for (size_t s = epoch == start.epoch ? static_cast<size_t>(start.step_in_epoch) : 0;
         s < steps.size() && run.step() < total_steps; ++s) {
      TrainerRun::StepResult step;
      step.start = std::chrono::steady_clock::now();
      const auto [sums, grad_norm, tokens] = train_step(model, run.dp(), steps[s], train_reference, r, o, pad_id, dist);
      step.loss = sums.loss, step.grad_norm = grad_norm, step.tokens = tokens;
      step.epoch = epoch, step.next_step_in_epoch = static_cast<int64_t>(s) + 1;
      step.epoch_progress = static_cast<double>(epoch) + static_cast<double>(s + 1) / static_cast<double>(steps.size());
      const double accuracy = sums.correct / static_cast<double>(std::max<int64_t>(sums.pairs, 1));
      char what[96];
      std::snprintf(what, sizeof what, "loss %.4f  reward acc %.2f  margin %.3f", sums.loss, accuracy,
                    sums.margin / static_cast<double>(std::max<int64_t>(sums.pairs, 1)));
      const bool taken = run.finish_step(step, [&](nlohmann::json& record) {
        record["pairs"] = sums.pairs;
        record.update(sums.to_json());
        if (r.train.val_every > 0 && run.step() % r.train.val_every == 0 && !data.validation.empty()) {
          last_validation = {run.step(), validate()};
          record.update(last_validation.second.to_json("val_"));
        }
      }, what);
      if (!taken) continue;
      outcome.last_loss = sums.loss;
      if (outcome.first_accuracy < 0) outcome.first_accuracy = accuracy;
      outcome.last_accuracy = accuracy;
      if (r.eval && eval_due(*r.eval, run.step(), total_steps)) evaluate();
    }
  }
  outcome.steps = run.step();
  run.checkpoint_last();  // written while the held-out pairs are scored
  if (!data.validation.empty()) {
    // The last step's validation when it ran on that step already, so no step is logged twice.
    const bool validated = last_validation.first == run.step();
    DpoMetricSums v = validated ? last_validation.second : validate();
    nlohmann::json record = {{"step", run.step()}};
    record.update(v.to_json("val_"));
    if (run.metrics() && !validated) run.metrics()->write(record);
    outcome.validation_accuracy = v.correct / static_cast<double>(std::max<int64_t>(v.pairs, 1));
    if (dist.is_main())
      std::fprintf(stderr, "validation (%lld pairs): loss %.4f, reward accuracy %.3f, margin %.4f\n",
                   static_cast<long long>(v.pairs), v.loss, outcome.validation_accuracy,
                   v.margin / static_cast<double>(std::max<int64_t>(v.pairs, 1)));
  }
  if (r.eval && r.eval->at_end && last_eval_step != run.step()) evaluate();
  outcome.final_dir = run.finish();
  return outcome;
}

}  // namespace dsalign
