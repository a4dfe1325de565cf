#include "sft/sft_trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <sstream>

#include "data/sft_data.h"
#include "dist/data_parallel.h"
#include "dist/sharded_units.h"
#include "dist/dist_config.h"
#include "dist/shard_plan.h"
#include "eval/repetition_eval.h"
#include "model/checkpoint.h"
#include "model/export.h"
#include "model/inspect.h"
#include "train/device_memory.h"
#include "train/device_sums.h"
#include "train/run_setup.h"
#include "train/step_engine.h"
#include "train/trainer_run.h"
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

// Held-out loss over all ranks: rows dealt like a step's, sums all-reduced. Under zero3 every rank
// takes the same number of batches (a rank out of rows scores the first row and drops it).
double validation_loss(CausalLM& model, const SftData& data, const SftRecipe& r, int32_t pad_id, const Dist& dist) {
  if (data.validation.empty()) return -1;
  std::vector<const TokenizedExample*> all;
  for (const auto& e : data.validation) all.push_back(&e);
  auto rows = pack_examples(all, r.data.max_seq_len, r.data.packing, pad_id);
  std::vector<PackedRow> mine;
  for (size_t i : rank_rows(0, rows.size(), dist.world_size(), dist.rank())) mine.push_back(rows[i]);
  torch::NoGradGuard no_grad;
  DeviceSums sums;  // loss sum, loss tokens
  const auto per_batch = static_cast<size_t>(r.train.micro_batch_size);
  const int64_t batches = static_cast<int64_t>((mine.size() + per_batch - 1) / per_batch);
  const std::vector<PackedRow> filler = {rows.front()};
  for (int64_t t = 0, turns = model->turns_in_lockstep(batches); t < turns; ++t) {
    const size_t b = static_cast<size_t>(t) * per_batch;
    const bool real = t < batches;
    const bool varlen = model->uses_varlen_attention();
    Batch batch = real ? collate(mine, b, std::min(mine.size(), b + per_batch), model->options.device, pad_id, varlen)
                       : collate(filler, 0, 1, model->options.device, pad_id, varlen);
    auto [s, n] = model->loss_sum(batch.input, batch.labels, batch.target_rows);
    if (!real) continue;
    sums.add(torch::stack({s.to(torch::kFloat64), n.to(torch::kFloat64)}));
  }
  std::vector<double> total = dist.all_reduce_sum(sums.read(2), "validation loss");
  return total[1] > 0 ? total[0] / total[1] : -1;
}

// The repetition ratio over all ranks: each rank generates for every world_size-th prompt, the
// counts are summed, and rank 0 writes the report with the first cases in prompt order.
RepetitionResult repetition_on_ranks(CausalLM& model, const Tokenizer& tokenizer, ChatFormat format,
                                     const std::vector<EvalPrompt>& prompts, const RepetitionEvalConfig& config,
                                     const fs::path& report, const std::string& label, const Dist& dist) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<EvalPrompt> mine;
  std::vector<int64_t> order;
  for (size_t i = static_cast<size_t>(dist.rank()); i < prompts.size(); i += static_cast<size_t>(dist.world_size())) {
    mine.push_back(prompts[i]);
    order.push_back(static_cast<int64_t>(i));
  }
  RepetitionCases part = score_repetition(model, tokenizer, format, mine, order, config, label);
  const std::vector<double> sums = dist.all_reduce_sum(
      {static_cast<double>(part.counts.prompts), static_cast<double>(part.counts.terminated),
       static_cast<double>(part.counts.repetitive)},
      "repetition counts");
  RepetitionResult counts;
  counts.prompts = static_cast<int64_t>(sums[0]);
  counts.terminated = static_cast<int64_t>(sums[1]);
  counts.repetitive = static_cast<int64_t>(sums[2]);
  nlohmann::json my_cases = nlohmann::json::array();
  for (const auto& [index, line] : part.cases) my_cases.push_back({index, line});
  std::vector<std::pair<int64_t, std::string>> cases;
  for (const std::string& text : dist.all_gather_strings(my_cases.dump(), "repetition cases"))
    for (const auto& c : nlohmann::json::parse(text)) cases.emplace_back(c[0].get<int64_t>(), c[1].get<std::string>());
  return finish_repetition_report(counts, std::move(cases), config, dist.is_main() ? report : fs::path(), label,
                                  std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void log_repetition(MetricsLog& metrics, int64_t step, const RepetitionResult& result, const fs::path& report) {
  metrics.write({{"step", step},
                 {"repetition_ratio", result.ratio},
                 {"repetition_repetitive", result.repetitive},
                 {"repetition_terminated", result.terminated},
                 {"repetition_prompts", result.prompts},
                 {"repetition_report", report.string()}});
  std::fprintf(stderr, "step %lld: repetition ratio %.4f (%lld of %lld responses repeat; %lld terminated) -> %s\n",
               static_cast<long long>(step), result.ratio, static_cast<long long>(result.repetitive),
               static_cast<long long>(result.prompts), static_cast<long long>(result.terminated), report.string().c_str());
}

// The data, tokenized once: rank 0 first (filling the token cache), then the others read it.
SftData prepare_data_once(const SftRecipe& r, const RecipeFile& file, const Tokenizer& tokenizer, ChatFormat format,
                          const Dist& dist) {
  if (!dist.is_main()) dist.barrier("token cache");
  // parse_sft_recipe resolved the sources against the recipe's folder already.
  SftData data = prepare_sft_data(r.data, tokenizer, format, fs::path());
  if (dist.is_main()) {
    std::cerr << "data: " << data.summary() << "\n";
    dist.barrier("token cache");
  }
  return data;
}

// One optimizer step's forward and backward over this rank's rows, gradients synchronised and
// clipped. Sum-then-divide: every micro-batch's loss sum is divided by the loss tokens of the
// whole step on all ranks, so the step equals one big batch in one process.
struct StepSums {
  double loss = 0, grad_norm = 0;
  int64_t tokens = 0, micro_batches = 0;
};
StepSums forward_backward(CausalLM& model, DataParallel& dp, const Dist& dist, const std::vector<PackedRow>& step_rows,
                          const TrainConfig& train, const torch::Device& device, int32_t pad_id) {
  const RankStep plan = plan_rank_step(step_rows, dist, train.micro_batch_size);
  double local_loss_tokens = 0, local_tokens = 0;
  for (const PackedRow& row : plan.rows) {
    local_tokens += static_cast<double>(row.real_tokens);
    for (size_t t = 1; t < row.labels.size(); ++t) local_loss_tokens += row.labels[t] != -100;
  }
  const std::vector<double> counts = dist.all_reduce_sum({local_loss_tokens, local_tokens}, "step token counts");
  const double loss_tokens = std::max(counts[0], 1.0);
  StepSums out;
  out.tokens = static_cast<int64_t>(counts[1]);
  out.micro_batches = plan.micro_batches;
  DeviceSums local_loss_sum;  // on the device: read once, after the step's micro-batches
  out.grad_norm = run_micro_batches(plan, train.micro_batch_size, dp, train.grad_clip,
                                    [&](const std::vector<PackedRow>& rows, size_t begin, size_t end, double weight) {
                                      Batch batch = collate(rows, begin, end, device, pad_id, model->uses_varlen_attention());
                                      auto [sum, count] = model->loss_sum(batch.input, batch.labels, batch.target_rows);
                                      (sum * (weight / loss_tokens)).backward();
                                      local_loss_sum.add(sum.detach() * weight);
                                    });
  out.loss = dist.all_reduce_sum(local_loss_sum.read(1), "step loss")[0] / loss_tokens;
  return out;
}

}  // namespace

SftOutcome run_sft(const SftRecipe& r, const RecipeFile& file, const std::string& resume, const Dist& dist) {
  // --- setup ---
  TrainerRun run({r.run, r.train, r.dist, resolved_recipe_yaml(r, file), file.path, {"repetition", "eval"}, resume}, dist);
  const fs::path out = r.run.output_dir;
  const fs::path model_dir = resolve_model_dir(r.model.path, "model.path");
  Tokenizer tokenizer = Tokenizer::load(model_dir);
  ChatFormat format = resolve_chat_format(r.data.chat_template, tokenizer);
  SftData data = prepare_data_once(r, file, tokenizer, format, dist);
  const int32_t pad_id = tokenizer.pad_id().value_or(tokenizer.eos_id().value_or(0));
  run.load_model(model_dir, decoder_options(r.model, file.path), tokenizer.vocab_size(), format);
  CausalLM& model = run.model();
  const DecoderOptions& o = run.options();

  // The whole run's step count, for the schedule and the ETA.
  int64_t total_steps = 0;
  for (int64_t e = 0; e < r.data.epochs; ++e)
    total_steps += static_cast<int64_t>(plan_steps(epoch_rows(data, r.data, e, pad_id), r.train).size());
  if (r.train.max_steps > 0) total_steps = std::min(total_steps, r.train.max_steps);
  run.set_total_steps(total_steps);
  const double flops_per_token = training_flops_per_token(model->config, r.data.max_seq_len);

  std::vector<EvalPrompt> repetition_prompts;
  if (r.repetition) {
    repetition_prompts = read_eval_prompts(r.repetition->prompts, r.repetition->max_prompts);
    check_prompts_fit(model->config, tokenizer, format, repetition_prompts, r.repetition->prompts);
  }
  SftOutcome outcome;
  // The repetition ratio of the model as it stands, into metrics.jsonl and repetition/step_<N>.jsonl.
  int64_t last_repetition_step = -1;
  auto measure = [&] {
    const int64_t step = run.step();
    fs::path report = out / "repetition" / ("step_" + std::to_string(step) + ".jsonl");
    RepetitionResult result = repetition_on_ranks(model, tokenizer, format, repetition_prompts, *r.repetition, report,
                                                  "step " + std::to_string(step), dist);
    last_repetition_step = step;
    outcome.repetition_ratio = result.ratio;
    if (dist.is_main()) log_repetition(*run.metrics(), step, result, report);
  };
  if (r.repetition && r.repetition->at_start && run.step() == 0) measure();
  int64_t last_eval_step = -1;
  auto evaluate = [&] {
    last_eval_step = run.step();
    run_eval_monitor(model, tokenizer, *r.eval, run.step(), run.metrics(), out, dist);
  };
  if (r.eval && r.eval->at_start && run.step() == 0) evaluate();
  // The monitors of a resumed run's checkpoint step ran after the checkpoint; the resume dropped
  // their lines (train/run_setup's truncate_metrics), so they run again here.
  if (run.resuming() && run.step() > 0 && run.step() < total_steps) {
    if (r.repetition && r.repetition->every_steps > 0 && run.step() % r.repetition->every_steps == 0) measure();
    if (r.eval && eval_due(*r.eval, run.step(), total_steps)) evaluate();
  }

  // --- train ---
  std::pair<int64_t, double> last_validation = {-1, -1.0};  // (step, loss) of the newest validation
  const TrainingState start = run.state();
  for (int64_t epoch = start.epoch; epoch < r.data.epochs && run.step() < total_steps; ++epoch) {
    std::vector<PackedRow> rows = epoch_rows(data, r.data, epoch, pad_id);
    auto steps = plan_steps(rows, r.train);
    for (size_t s = epoch == start.epoch ? static_cast<size_t>(start.step_in_epoch) : 0;
         s < steps.size() && run.step() < total_steps; ++s) {
      TrainerRun::StepResult step;
      step.start = std::chrono::steady_clock::now();
      auto [begin, end] = steps[s];
      const std::vector<PackedRow> step_rows(rows.begin() + static_cast<std::ptrdiff_t>(begin),
                                             rows.begin() + static_cast<std::ptrdiff_t>(end));
      const StepSums sums = forward_backward(model, run.dp(), dist, step_rows, r.train, o.device, pad_id);
      step.loss = sums.loss, step.grad_norm = sums.grad_norm, step.tokens = sums.tokens;
      step.epoch = epoch, step.next_step_in_epoch = static_cast<int64_t>(s) + 1;
      step.epoch_progress = static_cast<double>(epoch) + static_cast<double>(s + 1) / static_cast<double>(steps.size());
      char what[64];
      std::snprintf(what, sizeof what, "loss %.4f", sums.loss);
      const bool taken = run.finish_step(step, [&](nlohmann::json& record) {
        if (record.contains("tokens_per_s"))  // a logged step: MFU on an H100/H200 in bf16
          record["mfu"] = o.device.is_cuda() && o.compute_dtype == torch::kBFloat16
                              ? nlohmann::json(flops_per_token * record["tokens_per_s"].get<double>() / 989e12)
                              : nlohmann::json(nullptr);
        const double val_loss = r.train.val_every > 0 && run.step() % r.train.val_every == 0
                                    ? validation_loss(model, data, r, pad_id, dist) : -1;
        if (val_loss >= 0) record["val_loss"] = val_loss, last_validation = {run.step(), val_loss};
      }, what);
      if (taken) outcome.last_loss = sums.loss;
      if (r.repetition && r.repetition->every_steps > 0 && run.step() % r.repetition->every_steps == 0 &&
          run.step() < total_steps) {
        if (::isatty(STDERR_FILENO) && dist.is_main()) std::fprintf(stderr, "\n");
        measure();
      }
      if (r.eval && eval_due(*r.eval, run.step(), total_steps)) evaluate();
    }
  }
  outcome.steps = run.step();
  run.checkpoint_last();  // written while validation and the repetition monitor run
  // The last step's validation when it ran on that step already, so no step logs val_loss twice.
  if (last_validation.first == run.step()) {
    outcome.validation_loss = last_validation.second;
  } else {
    outcome.validation_loss = validation_loss(model, data, r, pad_id, dist);
    if (outcome.validation_loss >= 0 && run.metrics())
      run.metrics()->write({{"step", run.step()}, {"val_loss", outcome.validation_loss}});
  }
  if (r.repetition && r.repetition->at_end && last_repetition_step != run.step()) measure();
  if (r.eval && r.eval->at_end && last_eval_step != run.step()) evaluate();
  outcome.final_dir = run.finish();
  return outcome;
}

}  // namespace dsalign
