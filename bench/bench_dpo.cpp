// Times DPO training steps of a randomly initialised model of a given shape, through the trainer's
// own path (pair rows -> policy and reference log-probs -> loss -> backward -> AdamW), with the
// reference live (a frozen copy in the compute dtype) or precomputed (a table: nothing resident).
// Reports policy tokens/s and peak memory; run the peer in the same session for ratios.
//
//   dsalign_bench_dpo --model deepseek-coder-1.3b --seq-len 2048 --pairs 2 --device cuda
//                     --compute-dtype bf16 --reference live --steps 10

#include <iostream>
#include <random>

#include "bench/bench_util.h"
#include "cli/args.h"
#include "dpo/dpo_step.h"
#include "model/checkpoint.h"
#include "train/device_memory.h"
#include "train/run_setup.h"
#include "util/error.h"
#include "util/files.h"

using namespace dsalign;
namespace po = dsalign::cli::po;

namespace {

// A pair of sequences of seq_len tokens each: a shared prompt of prompt_len, then random responses.
TokenizedPair random_pair(int64_t seq_len, int64_t prompt_len, int64_t vocab, std::mt19937_64& rng) {
  std::uniform_int_distribution<int32_t> token(0, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(prompt_len));
  for (auto& t : prompt) t = token(rng);
  TokenizedPair pair;
  for (TokenizedExample* e : {&pair.chosen, &pair.rejected}) {
    e->ids = prompt;
    while (static_cast<int64_t>(e->ids.size()) < seq_len) e->ids.push_back(token(rng));
    e->loss_mask.assign(e->ids.size(), 1);
    std::fill(e->loss_mask.begin(), e->loss_mask.begin() + prompt_len, 0);
  }
  pair.prompt_tokens = static_cast<size_t>(prompt_len);
  return pair;
}

int run(int argc, char** argv) {
  bench::ModelFlags flags;
  std::string reference_mode;
  int64_t seq_len = 0, pairs = 0, prompt_len = 0;
  po::options_description options("dsalign_bench_dpo: time DPO steps on random pairs (a live reference holds its weights in the compute dtype)");
  flags.add_to(options);
  options.add_options()
      ("seq-len", po::value(&seq_len)->default_value(256), "tokens per sequence (prompt + response)")
      ("prompt-len", po::value(&prompt_len)->default_value(0), "prompt tokens (0: a quarter of seq-len)")
      ("pairs", po::value(&pairs)->default_value(2), "preference pairs per step (one forward)")
      ("reference", po::value(&reference_mode)->default_value("live"), "live or precomputed");
  po::variables_map vm;
  if (!cli::parse(cli::Args(argv + 1, argv + argc), "dsalign_bench_dpo [options]", options, {}, vm)) return 0;
  if (reference_mode != "live" && reference_mode != "precomputed") fail("--reference must be live or precomputed");
  if (prompt_len == 0) prompt_len = seq_len / 4;

  const ModelConfig config = flags.config();
  const DecoderOptions o = flags.options();

  std::mt19937_64 rng(1);
  std::vector<TokenizedPair> data;
  for (int64_t i = 0; i < pairs; ++i) data.push_back(random_pair(seq_len, prompt_len, config.vocab_size, rng));
  const PairList all(data);
  std::vector<PackedRow> rows = pair_rows(all.pairs, seq_len, /*packing=*/false, 0);

  std::optional<CausalLM> reference;
  ReferenceTable table;
  if (reference_mode == "live") {
    reference = CausalLM(config, reference_options(o));
    (*reference)->init_weights(1);
    for (auto& p : (*reference)->parameters()) p.set_requires_grad(false);
  } else {
    table.chosen.assign(data.size(), -100.0f);
    table.rejected.assign(data.size(), -100.0f);
  }
  const ReferenceSource source{reference ? &*reference : nullptr, reference ? nullptr : &table};
  CausalLM model(config, o);
  model->init_weights(0);
  TrainConfig train;
  train.beta2 = 0.95;
  NamedTensors named;
  for (auto& item : model->named_parameters()) named.emplace_back(item.key(), item.value());
  std::unique_ptr<AdamW> adamw = make_adamw(named, train, o.kernels.adamw == ops::Backend::kernels);
  DpoLossConfig loss;
  const double chosen_tokens = chosen_loss_tokens(all.pairs);

  auto step = [&] {
    PairBatch batch = collate_pairs(rows, 0, rows.size(), all.ids, o.device, 0, model->uses_varlen_attention());
    PairLogps logps = score_pairs(model, batch, source);
    DpoTerms terms = dpo_terms(loss, logps);
    micro_batch_loss(loss, terms, logps, pairs, chosen_tokens).backward();
    adamw->step(5e-6);
    for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  };
  const double seconds = bench::time_steps(step, flags.warmup, flags.steps, o.device);
  double tokens_per_s = static_cast<double>(flags.steps * pairs * 2 * seq_len) / seconds;
  std::printf("model %s seq %lld pairs %lld device %s params %s compute %s reference %s%s\n", flags.model.c_str(),
              static_cast<long long>(seq_len), static_cast<long long>(pairs), flags.device.c_str(), flags.param_dtype.c_str(),
              flags.compute_dtype.c_str(), reference_mode.c_str(), flags.checkpointing ? " +checkpointing" : "");
  std::printf("kernels %s\n", describe(o.kernels).c_str());
  bench::print_record({{"name", "dsalign dpo reference=" + reference_mode + " kernels=" + flags.kernels},
                       {"bench", "dpo_step"},
                       {"seq", seq_len},
                       {"pairs", pairs},
                       {"kernels", describe(o.kernels)},
                       {"tokens_per_s", tokens_per_s},
                       {"step_s", seconds / static_cast<double>(flags.steps)},
                       {"peak_bytes", peak_memory_bytes(o.device)}});
  std::printf("policy tokens/s %.1f  step %.3f s  peak memory %s\n", tokens_per_s, seconds / static_cast<double>(flags.steps),
              human_bytes(peak_memory_bytes(o.device)).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return dsalign::bench::guarded_main("dsalign_bench_dpo", [&] { return run(argc, argv); });
}
