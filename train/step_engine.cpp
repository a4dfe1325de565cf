#include "train/step_engine.h"

#include <unistd.h>

#include <cstdio>

#include "dist/shard_plan.h"
#include "model/export.h"
#include "train/checkpoint_reader.h"
#include "util/files.h"
#include "util/hash.h"

namespace dsalign {

void prepare_run_on_ranks(const RunSection& run, bool resuming, const std::string& resolved_recipe,
                          const std::filesystem::path& recipe_path, const Dist& dist, const std::vector<std::string>& extra) {
  check_run_directory(run, resuming);
  const uint64_t hash = std::stoull(Hasher().add(resolved_recipe).hex().substr(0, 16), nullptr, 16);
  dist.check_same(hash, "the resolved recipe (" + recipe_path.string() + " and its overrides)");
  if (!dist.is_main()) return;
  prepare_run_directory(run, resuming, extra);
  write_file_atomic(run.output_dir / "config.yaml", resolved_recipe);
}

ResumedRun resume_on_ranks(const std::filesystem::path& run_dir, const std::string& resume, CausalLM& model,
                           const Dist& dist) {
  ResumedRun run;
  if (resume.empty()) return run;
  run.state = resume_training(
      run_dir, resume, model, [&](const CheckpointReader& reader) { run.checkpoint = reader.dir(); }, dist.is_main(),
      dist.rank());
  return run;
}

void ResumedRun::restore_optimizer(DataParallel& dp) const {
  if (checkpoint.empty()) return;
  dp.load_optimizer_state(CheckpointReader(checkpoint));
}

std::optional<MetricsLog> open_metrics(const RunSection& run, bool resuming, const std::string& resolved_recipe,
                                       const Dist& dist) {
  std::optional<MetricsLog> metrics;
  if (!dist.is_main()) return metrics;
  metrics.emplace(run.output_dir, resuming, run.tensorboard);
  if (!resuming) metrics->write_text(0, "recipe", recipe_markdown(resolved_recipe));
  return metrics;
}

RankStep plan_rank_step(const std::vector<PackedRow>& step_rows, const Dist& dist, int64_t micro_batch_size) {
  RankStep plan;
  for (size_t i : rank_rows(0, step_rows.size(), dist.world_size(), dist.rank())) plan.rows.push_back(step_rows[i]);
  plan.micro_batches = micro_batches_per_rank(step_rows.size(), dist.world_size(), micro_batch_size);
  if (!step_rows.empty()) plan.filler.push_back(step_rows.front());
  return plan;
}

double run_micro_batches(const RankStep& plan, int64_t micro_batch_size, DataParallel& dp, double grad_clip,
                         const MicroBatch& micro) {
  const size_t per_batch = static_cast<size_t>(micro_batch_size);
  dp.begin_step();
  for (int64_t m = 0; m < plan.micro_batches; ++m) {
    const size_t begin = static_cast<size_t>(m) * per_batch;
    if (begin < plan.rows.size())
      micro(plan.rows, begin, std::min(plan.rows.size(), begin + per_batch), 1.0);
    else if (dp.strategy() == ShardStrategy::zero3)
      micro(plan.filler, 0, 1, 0.0);
    dp.after_micro_batch();
  }
  dp.finish_gradients();
  return dp.clip_grad_norm(grad_clip);
}

CheckpointSnapshot rank_checkpoint(CausalLM& model, DataParallel& dp, const Dist& dist, const std::filesystem::path& out,
                                   const TrainingState& state, ChatFormat format, const std::filesystem::path& tokenizer_dir,
                                   int64_t keep_last, double timeout_minutes, HostStaging& staging) {
  if (dist.world_size() == 1)
    return training_snapshot(model, dp.model_weights(model), dp.optimizer_state(staging), out, state, format, tokenizer_dir,
                             keep_last, staging);
  // A token new for every checkpoint of every attempt names the shared staging directory.
  const std::string mine = dist.is_main() ? Hasher()
                                                .add(std::to_string(::getpid()))
                                                .add(std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()))
                                                .hex()
                                                .substr(0, 12)
                                          : std::string();
  const std::string token = dist.all_gather_strings(mine, "checkpoint token").front();
  DataParallel::CheckpointPart part = dp.checkpoint_part(staging);
  CheckpointSnapshot s;
  s.dir = out / "checkpoints" / ("step_" + std::to_string(state.step));
  s.config = model->config;
  s.weight_dtype = model->options.param_dtype;
  s.weights = std::move(part.weights);
  s.trainer_state = std::move(part.optimizer);
  s.trainer_state.emplace_back("rng.cpu", cpu_rng_state());
  s.state = state.to_json(format);
  s.tokenizer_dir = tokenizer_dir;
  s.keep_last = keep_last;
  ShardPart shard;
  shard.rank = dist.rank();
  shard.world = dist.world_size();
  shard.token = token;
  shard.wait = std::chrono::milliseconds(static_cast<int64_t>(timeout_minutes * 60000));
  shard.strategy = shard_strategy_name(dp.strategy());
  shard.tensors = std::move(part.layout);
  s.shard = std::move(shard);
  return s;
}

void export_final_on_ranks(CausalLM& model, DataParallel& dp, const Dist& dist, const std::filesystem::path& out,
                           int64_t step, const std::filesystem::path& tokenizer_dir, ChatFormat format) {
  if (dist.world_size() == 1) {
    export_final(model->config, dp.model_weights(model), out, tokenizer_dir, format);
    return;
  }
  // Every rank returns once final/ is complete (a pipeline's next stage reads it), or every rank
  // fails with rank 0's error.
  dist.all_succeed(
      [&] {
        if (!dist.is_main()) return;
        ExportOptions options;
        options.overwrite = true;
        export_model(out / "checkpoints" / ("step_" + std::to_string(step)), out / "final", chat_format_name(format),
                     options);
      },
      "final export");
}

bool checkpoint_due(const TrainConfig& train, int64_t step, std::chrono::steady_clock::time_point last, const Dist& dist) {
  bool due = train.checkpoint_every_steps > 0 && step % train.checkpoint_every_steps == 0;
  if (train.checkpoint_every_minutes > 0) {
    const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - last).count() / 60.0;
    due |= dist.all_reduce_max(dist.is_main() && minutes >= train.checkpoint_every_minutes ? 1 : 0, "checkpoint due") > 0;
  }
  return due;
}

void print_step_progress(const Dist& dist, int64_t step, int64_t total_steps, const std::string& what, double lr,
                         double grad_norm, double tokens_per_s, double seconds_so_far, int64_t steps_so_far) {
  if (!dist.is_main()) return;
  const bool tty = ::isatty(STDERR_FILENO);
  const double eta = seconds_so_far / static_cast<double>(std::max<int64_t>(steps_so_far, 1)) *
                     static_cast<double>(total_steps - step);
  std::fprintf(stderr, "%sstep %lld/%lld  %s  lr %.3g  grad_norm %.3g  %.0f tok/s  ETA %.0fs%s", tty ? "\r" : "",
               static_cast<long long>(step), static_cast<long long>(total_steps), what.c_str(), lr, grad_norm,
               tokens_per_s, eta, tty ? "   " : "\n");
}

}  // namespace dsalign
