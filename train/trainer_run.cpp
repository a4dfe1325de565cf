#include "train/trainer_run.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "dist/sharded_units.h"
#include "model/checkpoint.h"
#include "train/checkpoint_reader.h"
#include "train/device_memory.h"
#include "train/schedule.h"
#include "train/step_engine.h"
#include "train/training_checkpoint.h"
#include "util/error.h"
#include "util/files.h"
#include "util/interrupt.h"

namespace dsalign {
namespace fs = std::filesystem;

DecoderOptions on_rank_device(DecoderOptions o, const Dist& dist) {
  if (o.device.is_cuda() && !dist.single()) o.device = torch::Device(torch::kCUDA, static_cast<int8_t>(dist.local_rank()));
  return o;
}

TrainerRun::TrainerRun(const TrainerSpec& spec, const Dist& dist)
    : spec_(spec), dist_(dist), strategy_(resolve_strategy(spec.dist, dist.world_size())), out_(spec.run.output_dir) {
  // The checkpoint to resume from is checked before anything is written.
  if (resuming()) CheckpointReader(checkpoint_to_resume(out_, spec.resume));
  std::error_code ec;
  creates_directory_ = dist.is_main() && !resuming() && (!path_exists(out_) || fs::is_empty(out_, ec));
  prepare_run_on_ranks(spec.run, resuming(), spec.resolved_recipe, spec.recipe_path, dist, spec.extra_dirs);
}

TrainerRun::~TrainerRun() {
  // A new run that fails before its first step (bad input found while setting up) leaves no
  // directory behind; once a step has run, what it wrote stays for the user to inspect or resume.
  if (!creates_directory_ || std::uncaught_exceptions() == 0 || state_.step != first_step_) return;
  try {
    if (writer_) writer_->wait();
  } catch (...) {  // already unwinding from the error that matters
  }
  std::error_code ignored;
  fs::remove_all(out_, ignored);
}

void TrainerRun::load_model(const fs::path& model_dir, DecoderOptions o, int64_t tokenizer_vocab, ChatFormat format) {
  model_dir_ = model_dir;
  format_ = format;
  o = on_rank_device(o, dist_);
  options_ = o;
  torch::manual_seed(static_cast<uint64_t>(spec_.run.seed));
  // Under zero3 each rank reads only its rows of every tensor.
  model_ = strategy_ == ShardStrategy::zero3 ? load_sharded_model(dist_, model_dir, o, sharded_units_options(spec_.dist))
                                             : dsalign::load_model(model_dir, o);
  if (tokenizer_vocab > (*model_)->config.vocab_size)
    fail(model_dir.string(), ": the tokenizer has ", tokenizer_vocab, " tokens but the model's vocab_size is ",
         (*model_)->config.vocab_size);
  // Weights and RNG of a resumed run go into the model before DataParallel takes it (rows only
  // under zero3), then this rank's rows of the AdamW state.
  ResumedRun resumed = resume_on_ranks(out_, spec_.resume, *model_, dist_);
  dp_ = std::make_unique<DataParallel>(dist_, strategy_, *model_, spec_.train, sharded_units_options(spec_.dist));
  resumed.restore_optimizer(*dp_);
  state_ = resumed.state;
  first_step_ = last_checkpoint_step_ = state_.step;
  if (dist_.is_main() && !dist_.single())
    std::fprintf(stderr, "dist: %lld ranks (%s), strategy %s\n", static_cast<long long>(dist_.world_size()),
                 dist_.backend_name().c_str(), shard_strategy_name(strategy_));
  // Rank 0 writes metrics, checkpoints' publication and the progress line; every rank takes part
  // in collectives and writes its own part of each checkpoint.
  dist_.all_succeed([&] { metrics_ = open_metrics(spec_.run, resuming(), spec_.resolved_recipe, dist_); }, "metrics and TensorBoard logs");
  writer_ = std::make_unique<CheckpointWriter>(spec_.train.async_checkpoint);
  run_start_ = last_checkpoint_ = std::chrono::steady_clock::now();
}

void TrainerRun::checkpoint() {
  // Every rank writes its part (in the background); rank 0 publishes.
  HostStaging& staging = writer_->staging();  // waits for the previous write: its buffers are reused
  writer_->submit(rank_checkpoint(*model_, *dp_, dist_, out_, state_, format_, model_dir_, spec_.train.keep_last,
                                  spec_.dist.timeout_minutes, staging));
  last_checkpoint_ = std::chrono::steady_clock::now();
  last_checkpoint_step_ = state_.step;
}

nlohmann::json TrainerRun::step_record(const StepResult& r, double lr, double tokens_per_s, const std::vector<double>& peaks) {
  nlohmann::json record = {{"step", state_.step},
                           {"epoch", r.epoch_progress},
                           {"loss", r.loss},
                           {"lr", lr},
                           {"grad_norm", r.grad_norm},
                           {"tokens_per_s", tokens_per_s},
                           {"peak_memory_bytes", static_cast<int64_t>(*std::max_element(peaks.begin(), peaks.end()))},
                           {"tokens_seen", state_.tokens_seen}};
  if (state_.skipped_steps) record["skipped_steps"] = state_.skipped_steps;
  if (dist_.single()) return record;
  const DataParallel::Traffic traffic = dp_->last_step_traffic();
  const DataParallel::Held held = dp_->held_bytes();
  record["world_size"] = dist_.world_size();
  record["peak_memory_bytes_per_rank"] = std::vector<int64_t>(peaks.begin(), peaks.end());
  record["reduced_bytes"] = traffic.reduced;
  record["gathered_bytes"] = traffic.gathered;
  if (strategy_ == ShardStrategy::zero3) {
    record["gathered_peak_bytes"] = traffic.gathered_peak;
    record["gathered_after_step_bytes"] = traffic.gathered_after;
  }
  record["held_weight_bytes"] = held.weights;
  record["held_gradient_bytes"] = held.gradients;
  record["held_optimizer_bytes"] = held.optimizer;
  return record;
}

bool TrainerRun::finish_step(const StepResult& r, const std::function<void(nlohmann::json&)>& add_metrics,
                             const std::string& what) {
  // A signal (util/interrupt) stops every rank before the same step: a collective decides.
  if (dist_.all_reduce_max(interrupt_signal() ? 1.0 : 0.0, "interrupt") > 0) {
    dist_.all_succeed([&] { writer_->wait(); }, "checkpoint");
    const fs::path newest = newest_training_checkpoint(out_);
    fail("interrupted before step ", state_.step + 1, newest.empty() ? std::string(": no checkpoint yet")
                                                                     : ": the newest complete checkpoint is " + newest.string() +
                                                                           " (continue with --resume)");
  }
  const int64_t step = ++state_.step;
  state_.epoch = r.epoch;
  state_.step_in_epoch = r.next_step_in_epoch;
  if (!std::isfinite(r.loss) || !std::isfinite(r.grad_norm)) {
    const char* which = std::isfinite(r.loss) ? "non-finite gradient norm" : "non-finite loss";
    if (spec_.train.on_nonfinite == TrainConfig::OnNonFinite::stop)
      fail("step ", step, ": ", which, " (stopping; set train.on_nonfinite=skip to skip such steps)");
    dp_->zero_grad();
    ++state_.skipped_steps;
    if (metrics_) metrics_->write({{"step", step}, {"skipped", which}, {"skipped_steps", state_.skipped_steps}});
    return false;
  }
  const double lr = learning_rate(spec_.train.schedule, step, total_steps_);
  dp_->step(lr);
  state_.tokens_seen += r.tokens;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - r.start).count();
  const double tokens_per_s = static_cast<double>(r.tokens) / seconds;
  // Every rank takes the same branches: the peak-memory gather is a collective, only on logged steps.
  const bool logging = step % spec_.train.log_every == 0 || step == total_steps_;
  const std::vector<double> peaks =
      logging ? dist_.all_gather_values(static_cast<double>(peak_memory_bytes(options_.device)), "peak memory")
              : std::vector<double>{};
  nlohmann::json record = logging ? step_record(r, lr, tokens_per_s, peaks) : nlohmann::json::object();
  add_metrics(record);
  if (dist_.is_main() && logging) {
    metrics_->write(record);
    print_step_progress(dist_, step, total_steps_, what, lr, r.grad_norm, tokens_per_s,
                        std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start_).count(),
                        step - first_step_);
  }
  if (checkpoint_due(spec_.train, step, last_checkpoint_, dist_)) checkpoint();
  return true;
}

void TrainerRun::checkpoint_last() {
  if (dist_.is_main() && ::isatty(STDERR_FILENO)) std::fprintf(stderr, "\n");
  // The background write of this very step may still be publishing on rank 0: wait for it on
  // every rank before asking whether the step is on disk, or it would be written twice.
  dist_.all_succeed([&] { writer_->wait(); }, "checkpoint");
  const bool missing = last_checkpoint_step_ != state_.step || newest_training_checkpoint(out_).empty();
  if (dist_.all_reduce_max(dist_.is_main() && missing ? 1 : 0, "last checkpoint") > 0) checkpoint();
}

fs::path TrainerRun::finish() {
  dist_.all_succeed([&] { writer_->wait(); }, "checkpoint");
  export_final_on_ranks(*model_, *dp_, dist_, out_, state_.step, model_dir_, format_);
  return out_ / "final";
}

}  // namespace dsalign
